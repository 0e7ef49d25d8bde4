import { spawn } from 'node:child_process';
import {
  createReplayChannel,
  FrameType,
  Mux,
  Recorder,
  readRecordingFile,
} from '@picket/agentproto';

/** The code under test: counts the lines of `text` with `wc -l` on whatever agent `mux` reaches. */
export async function countLines(mux: Mux, text: string): Promise<number> {
  let out = '';
  mux.registerStream(1, {
    write: (data) => {
      out += Buffer.from(data).toString();
    },
    eof: () => {},
  });
  const exec = { path: 'wc', argv: ['wc', '-l'], env: null, cwd: '' };
  const [code] = await Promise.all([
    mux.run(), // the read loop: resolves with the Exit frame's code
    (async () => {
      await mux.send({ t: FrameType.Exec, x: exec });
      await mux.sendData(0, Buffer.from(text));
      await mux.sendEOF(0);
    })(),
  ]);
  if (code !== 0) throw new Error(`wc -l exited with ${code}`);
  return Number(out.trim());
}

/** Runs countLines against a real agent (`via`, e.g. `['picket-agent']`), recording to `file`. */
export async function recordFixture(via: readonly string[], file: string, text: string) {
  // verbatim: a fixture must replay, and it holds nothing secret
  const recorder = await Recorder.open(file, { redact: false });
  recorder.writeSessionHeader({ agent_path: via.join(' '), backend_type: 'local' });
  const exec = { path: 'wc', argv: ['wc', '-l'], env: null, cwd: '' };
  const seq = recorder.writeCommandStart(exec);
  const agent = spawn(via[0] as string, via.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const closed = new Promise((resolve) => agent.once('close', resolve));
  const mux = new Mux(agent.stdout, agent.stdin, { recorder, recordSeq: seq });
  try {
    const lines = await countLines(mux, text);
    recorder.writeCommandEnd(seq, 0);
    return lines;
  } finally {
    agent.stdin.end(); // the agent exits once its input ends
    await closed;
    await recorder.close(); // the footer; rejects if any write failed
  }
}

/** Replays the fixture: no agent runs, and a countLines that sends anything else fails. */
export async function replayFixture(file: string, text: string): Promise<number> {
  const { records, error } = await readRecordingFile(file);
  if (error) throw error; // a damaged tail: `records` still holds what came before it
  const channel = createReplayChannel(records);
  const lines = await countLines(new Mux(channel.readable, channel.writable), text);
  await channel.done;
  return lines;
}
