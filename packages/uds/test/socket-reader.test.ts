import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { adoptAccepted, SocketReader } from '../src/internal.js';
import { tempSocket, until } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A server with `pauseOnConnect` (as adoptAccepted needs) handing each accepted socket to `onAccept`. */
async function listen(onAccept: (s: net.Socket) => void): Promise<string> {
  const tmp = tempSocket();
  cleanups.push(tmp.cleanup);
  const server = net.createServer({ pauseOnConnect: true }, onAccept);
  await new Promise<void>((r) => server.listen(tmp.path, () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return tmp.path;
}

describe('adoptAccepted', () => {
  it('moves an accepted socket onto a SocketReader: bytes sent before and after, replies, end', async () => {
    let adopted: { socket: net.Socket; reader: SocketReader | undefined } | undefined;
    let accepted: net.Socket | undefined;
    const received: Buffer[] = [];
    const path = await listen((s) => {
      accepted = s;
      adopted = adoptAccepted(s);
      adopted.reader?.onBytes((b) => received.push(Buffer.from(b)));
    });
    const client = net.createConnection({ path });
    cleanups.push(() => {
      client.destroy();
      adopted?.socket.destroy();
    });
    client.write('sent at once;'); // may reach the server before it accepts
    await until(() => adopted !== undefined);
    const { socket, reader } = adopted as { socket: net.Socket; reader: SocketReader | undefined };
    expect(reader).toBeInstanceOf(SocketReader);
    expect(socket).not.toBe(accepted);
    expect(accepted?.destroyed).toBe(true);
    client.write('sent later');
    await until(() => Buffer.concat(received).length === 23);
    expect(Buffer.concat(received).toString()).toBe('sent at once;sent later');
    const back: Buffer[] = [];
    client.on('data', (b: Buffer) => back.push(b));
    socket.write('reply');
    await until(() => Buffer.concat(back).toString() === 'reply');
    const ended = new Promise<void>((r) => socket.once('end', () => r()));
    client.end();
    await ended;
  });

  it('leaves a socket without a handle as it is, reading through data events', () => {
    const s = new net.Socket();
    s.destroy();
    const { socket, reader } = adoptAccepted(s);
    expect(socket).toBe(s);
    expect(reader).toBeUndefined();
  });
});
