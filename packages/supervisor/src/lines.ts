/**
 * Splits a byte stream into lines with a hard length limit. prox reads plugin stdout with a
 * 64 KiB scanner that silently stops at a longer line while the plugin blocks on a full pipe;
 * here an over-long line is reported to the owner (who fails loudly) and the rest of the
 * stream is still consumed, so the child never blocks on us.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** inside an over-long line: bytes are dropped up to the next newline */
  private skipping = false;

  /**
   * @param limit the longest line in bytes, newline excluded
   * @param onLine each complete line, UTF-8 decoded, without `\n` (and without a `\r` before it)
   * @param onOverflow called once per over-long line, with the bytes seen of it so far
   */
  constructor(
    private readonly limit: number,
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: (bytesSeen: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.skipping) {
        const piece = chunk.subarray(start, end);
        if (this.pendingBytes + piece.length > this.limit) {
          this.skipping = true;
          const seen = this.pendingBytes + piece.length;
          this.pending = [];
          this.pendingBytes = 0;
          this.onOverflow(seen);
        } else {
          this.pending.push(piece);
          this.pendingBytes += piece.length;
          if (nl !== -1) this.emit();
        }
      }
      if (nl === -1) return;
      this.skipping = false;
      start = nl + 1;
    }
  }

  /** The stream ended: a last line without a newline is still a line. */
  end(): void {
    if (this.pendingBytes > 0) this.emit();
    this.skipping = false;
  }

  private emit(): void {
    let line = Buffer.concat(this.pending, this.pendingBytes).toString('utf8');
    this.pending = [];
    this.pendingBytes = 0;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    this.onLine(line);
  }
}
