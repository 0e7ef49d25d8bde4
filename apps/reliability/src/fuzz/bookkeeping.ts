/**
 * Connection bookkeeping every fuzz target shares: the logger that hears the target's
 * close reasons, the good pair that must keep working beside the junk, and the end-of-run
 * check that the target let go of every fuzz connection and logged each one's end.
 */
import type { AgentResponse, RequestHeadersEvent } from '@picket/protocol';
import {
  type CaptureLogger,
  type CaptureLoggerOptions,
  captureLogger,
} from '../lib/capture-logger.js';
import { GoodTraffic } from '../lib/good-traffic.js';
import { checkGoodReply, type FuzzContext, goodEvent } from './target.js';

/** A target's capturing logger; with `--verbose` it also prints warn and above. */
export function targetLogger(
  ctx: FuzzContext,
  options: Omit<CaptureLoggerOptions, 'echo'>,
): CaptureLogger {
  return captureLogger({ ...options, echo: ctx.verbose ? 'warn' : undefined });
}

/**
 * Starts the good pair under `name`: request `i` is {@link goodEvent}(`good-<i>`), and
 * `send`'s answer must pass {@link checkGoodReply}.
 */
export function startGoodPair(
  name: string,
  send: (event: RequestHeadersEvent) => Promise<AgentResponse>,
): GoodTraffic {
  const good = new GoodTraffic(name, async (i) => {
    const cid = `good-${i}`;
    checkGoodReply(cid, await send(goodEvent(cid)));
  });
  good.start();
  return good;
}

/** Polls `done` every 20 ms until it holds or `ms` pass; a hang guard that never throws. */
export async function settle(done: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** What {@link connectionsReleased} compares at the end of a run. */
export interface ReleaseCheck {
  /** what a connection is called in the messages: 'connections' or 'streams' */
  unit: string;
  /** fuzz connections opened */
  opened: number;
  /** ids of the fuzz connections whose end the target logged */
  ended: ReadonlySet<string>;
  /** what the messages call those ends, e.g. 'logged close reasons' */
  endedLabel: string;
  /** connections the target holds now */
  held: () => number;
  /** how many of them the good pair holds */
  good: number;
}

/**
 * Waits (up to `guardMs`) until the target logged the end of every fuzz connection and
 * holds only the good pair's, then returns what is still off, as failure messages.
 */
export async function connectionsReleased(c: ReleaseCheck, guardMs: number): Promise<string[]> {
  await settle(() => c.ended.size >= c.opened && c.held() <= c.good, guardMs);
  const failures: string[] = [];
  const held = c.held();
  if (held !== c.good) {
    const expected = c.good === 1 ? 'only the good one' : `the good pair's ${c.good}`;
    failures.push(`server still holds ${held} ${c.unit} (expected ${expected})`);
  }
  if (c.ended.size !== c.opened) {
    failures.push(`${c.opened} fuzz ${c.unit} but ${c.ended.size} ${c.endedLabel}`);
  }
  return failures;
}
