/**
 * Reads a socket through net's `onread` option instead of `'data'` events: the
 * kernel's bytes land in a slab and go to one function, without the Readable
 * stream's work per read (a Buffer object per read, the buffer list, the `'data'`
 * emit and a `nextTick` to read more). On a proxy that waits for each answer this
 * is a measurable part of a round trip.
 *
 * Bytes are never written over: each read gets the unused tail of the slab, so the
 * views the reader of the bytes hands out (frames, body chunks in decoded events)
 * stay valid for as long as they are kept. A new slab starts when the tail is
 * short; a kept view pins at most one slab.
 */
import { type OnReadOpts, Socket, type SocketConstructorOpts } from 'node:net';

const SLAB_SIZE = 64 * 1024;
/** A read gets at least this much room (a smaller tail would split big frames into many reads). */
const MIN_TAIL = 16 * 1024;

export class SocketReader {
  private slab = Buffer.allocUnsafe(SLAB_SIZE);
  private used = 0;
  /** bytes of the last read, counted into `used` when net asks for the next buffer */
  private last = 0;
  private sink: ((bytes: Buffer) => void) | undefined;
  /** reads that came before anyone took them (none in practice: see {@link onBytes}) */
  private early: Buffer[] = [];

  /** The socket's `onread` option. */
  readonly onread: OnReadOpts = {
    buffer: () => this.nextBuffer(),
    callback: (n: number, buf: Uint8Array): boolean => {
      this.last = n;
      const bytes = buf as Buffer;
      const chunk = n === bytes.length ? bytes : bytes.subarray(0, n);
      if (this.sink === undefined) this.early.push(chunk);
      else this.sink(chunk);
      return true;
    },
  };

  /** Sends every read, starting with any that came before, to `sink`. */
  onBytes(sink: (bytes: Buffer) => void): void {
    this.sink = sink;
    const early = this.early;
    this.early = [];
    for (const chunk of early) sink(chunk);
  }

  private nextBuffer(): Buffer {
    this.used += this.last;
    this.last = 0;
    if (this.slab.length - this.used < MIN_TAIL) {
      this.slab = Buffer.allocUnsafe(SLAB_SIZE);
      this.used = 0;
    }
    return this.slab.subarray(this.used);
  }
}

/** What {@link adoptAccepted} returns: the socket to use, and its reader when it got one. */
export interface AdoptedSocket {
  socket: Socket;
  reader: SocketReader | undefined;
}

/**
 * Gives a socket a server accepted a {@link SocketReader}. net's server has no `onread`
 * option, so the accepted socket's handle moves into a new Socket created with one, and the
 * accepted object is dropped. The server must be created with `pauseOnConnect: true`, so
 * nothing has been read yet. This relies on net's `handle` constructor option and the
 * socket's `_handle` field (undocumented, unchanged from Node 12 to 24); when they are not
 * there the accepted socket is returned as it is, resumed, and reads through `'data'`.
 */
export function adoptAccepted(accepted: Socket): AdoptedSocket {
  const inner = accepted as unknown as { _handle?: object | null };
  const handle = inner._handle;
  if (handle === null || typeof handle !== 'object' || accepted.destroyed) {
    accepted.resume();
    return { socket: accepted, reader: undefined };
  }
  const reader = new SocketReader();
  let socket: Socket;
  try {
    socket = new Socket({
      handle,
      onread: reader.onread,
      allowHalfOpen: accepted.allowHalfOpen,
      readable: true,
      writable: true,
    } as SocketConstructorOpts);
  } catch {
    // cannot happen with a live handle; whatever state it left, the connection is closed
    accepted.destroy();
    return { socket: accepted, reader: undefined };
  }
  // The handle belongs to the new socket now: dropping the old object must not close it.
  inner._handle = null;
  accepted.destroy();
  return { socket, reader };
}
