/**
 * `picket-agent`: the agentproto agent on this process's stdin / stdout (bin/picket-agent.js
 * loads this file). The exit code is the session's (see runAgent); stdout is flushed first.
 */
import { runAgent } from './agent/index.js';

let code: number;
try {
  code = await runAgent({ stdin: process.stdin, stdout: process.stdout });
} catch (err) {
  // a bug, not a protocol failure: the mux may be gone, so say it where bootstrap errors go
  process.stderr.write(`picket-agent: ${(err as Error)?.stack ?? String(err)}\n`);
  code = 1;
}
process.stdin.pause();
process.stdout.write('', () => process.exit(code));
