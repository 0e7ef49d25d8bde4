/**
 * Process-level guards for the harnesses: any unhandled rejection or uncaught exception
 * fails the run (printed at once with the context needed to replay it), and a heap
 * sampler that measures the heap after a forced GC (needs `node --expose-gc`).
 */

/** Installs the hooks; `context()` says what was running (seed, target, connection). */
export function installCrashHooks(context: () => string): void {
  const die = (kind: string, err: unknown): void => {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`\nFAIL: ${kind} during ${context()}\n${text}\n`);
    process.exit(2);
  };
  process.on('unhandledRejection', (reason) => die('unhandled rejection', reason));
  process.on('uncaughtException', (err) => die('uncaught exception', err));
}

/** Heap in use after a full GC (or without GC when `--expose-gc` was not given). */
export function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
  return process.memoryUsage().heapUsed;
}

/** True when `global.gc` is available. */
export function canGc(): boolean {
  return typeof (globalThis as { gc?: unknown }).gc === 'function';
}

/** Bytes as MiB with one decimal. */
export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Samples heap-after-GC and RSS. */
export class MemoryMonitor {
  baseline = 0;
  peakHeap = 0;
  peakRss = 0;
  samples = 0;

  /** Records the reference point (after a warm-up). */
  setBaseline(): void {
    this.baseline = heapAfterGc();
    this.peakHeap = Math.max(this.peakHeap, this.baseline);
  }

  /** Takes one sample; returns the heap after GC. */
  sample(): number {
    const heap = heapAfterGc();
    this.samples++;
    this.peakHeap = Math.max(this.peakHeap, heap);
    this.peakRss = Math.max(this.peakRss, process.memoryUsage().rss);
    return heap;
  }
}
