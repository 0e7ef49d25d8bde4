/**
 * The agent program (`picket-agent`): one session per process, mode by first frame
 * (spec §2.3): an optional Config, then exactly one of Exec (exec mode), PathQuery (enumerate
 * mode) or FileOp (file-op service mode). Anything else is logged and the agent exits 127.
 * Once the mux is up every diagnostic goes in-band as Log frames; stderr is only for what
 * happens before that.
 */
import type { Readable, Writable } from 'node:stream';
import { FileOpService } from '../fileops/index.js';
import {
  type AgentConfig,
  type DecodedFrame,
  type Frame,
  FrameType,
  isKnownFrame,
} from '../frames.js';
import { Mux } from '../mux.js';
import { enumeratePathDirs } from './enumerate.js';
import { EXIT_CANNOT_START, runExec } from './exec.js';
import { muxLogger } from './log.js';

export { enumeratePathDirs } from './enumerate.js';
export { CHANGED_ENVS, filterEnv } from './env.js';

/** The agent's stdio and environment (the process's by default; tests pass their own). */
export interface AgentIO {
  stdin: Readable;
  stdout: Writable;
  env?: NodeJS.ProcessEnv;
  /** Largest inbound CBOR item the agent accepts. */
  maxItemSize?: number;
}

function describe(frame: Frame | DecodedFrame): string {
  return `type ${String(frame.t)}`;
}

/** Serves one session on `io`; resolves with the agent's exit code. */
export async function runAgent(io: AgentIO): Promise<number> {
  const env = io.env ?? process.env;
  const mux = new Mux(
    io.stdin,
    io.stdout,
    io.maxItemSize === undefined ? {} : { maxItemSize: io.maxItemSize },
  );
  const logger = muxLogger(mux);

  let first: DecodedFrame | undefined;
  let config: AgentConfig | undefined;
  try {
    first = await mux.readFrame();
    if (first !== undefined && isKnownFrame(first) && first.t === FrameType.Config && first.cfg) {
      config = first.cfg;
      first = await mux.readFrame();
    }
  } catch (err) {
    logger.error('reading the first frame failed', { error: (err as Error).message });
    return EXIT_CANNOT_START;
  }
  if (first === undefined) {
    logger.error('the input ended before an exec, path query or file op frame');
    return EXIT_CANNOT_START;
  }
  if (!isKnownFrame(first)) {
    logger.error('first frame must be exec, path query or file op', { frame: describe(first) });
    return EXIT_CANNOT_START;
  }
  const frame: Frame = first;

  if (frame.t === FrameType.Exec && frame.x !== undefined) {
    return runExec(mux, frame.x, config, logger, env);
  }

  if (frame.t === FrameType.PathQuery) {
    const entries = await enumeratePathDirs(frame.q?.paths, env.PATH);
    await mux.send({ t: FrameType.PathInfo, i: { entries } }).catch(() => undefined);
    return 0;
  }

  if (frame.t === FrameType.FileOp && frame.fop !== undefined) {
    const service = new FileOpService();
    const first = frame.fop;
    mux.onFileOp((req) => service.handle(req));
    try {
      const resp = await service.handle(first);
      await mux.send({ t: FrameType.FileResp, frp: { ...resp, id: first.id } });
      await mux.run();
    } catch (err) {
      // a decode error or a vanished peer ends the service the same way as EOF
      logger.debug('file-op service loop ended', { error: (err as Error).message });
    }
    await mux.idle();
    await service.closeAll();
    return 0;
  }

  logger.error('first frame must be exec, path query or file op', { frame: describe(frame) });
  return EXIT_CANNOT_START;
}
