// The file-op conformance table end to end: through two Muxes over in-process pipes, and
// through a real picket-agent child process in file-op mode (the first frame is a FileOp).
import { describe } from 'vitest';
import { FileOpService } from '../src/index.js';
import { openFileSession } from '../src/local.js';
import { agentVia, defineFileOpConformance, type FileOpDriver, muxPair } from './fileops-cases.js';

describe('file ops through two muxes over pipes', () => {
  defineFileOpConformance(async (): Promise<FileOpDriver> => {
    const pair = muxPair(new FileOpService());
    return {
      call: (req) => pair.client.fileOp(req),
      cwd: process.cwd(),
      close: () => pair.close(),
    };
  });
});

describe('file ops through a picket-agent child in file-op mode', () => {
  defineFileOpConformance(async (): Promise<FileOpDriver> => {
    const session = await openFileSession({ via: agentVia });
    return {
      call: (req) => session.mux.fileOp(req),
      cwd: process.cwd(), // the child inherits it
      close: () => session.close(),
    };
  });
});
