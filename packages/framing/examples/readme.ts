import { createConnection } from 'node:net';
import { encodeFrame, type Frame, FrameDecoder } from '@picket/framing';
import { MessageType } from '@picket/protocol';

const hello = { supported_versions: [2], proxy_id: 'demo', proxy_version: '1.0', config: null };

/** Sends the v2 handshake to a UDS agent and resolves with its reply frame. */
export async function handshake(socketPath: string): Promise<Frame> {
  const socket = createConnection(socketPath);
  socket.write(encodeFrame(MessageType.HandshakeRequest, Buffer.from(JSON.stringify(hello))));
  const decoder = new FrameDecoder(); // checks length and type before buffering a payload
  try {
    for await (const chunk of socket) {
      // Throws FramingError on a bad frame: the stream is then unusable, so we hang up.
      const [reply] = decoder.push(chunk); // payloads may be views into `chunk`
      if (reply) return reply;
    }
    decoder.finish(); // throws TRUNCATED if the agent hung up mid-frame
    throw new Error('agent closed the connection without replying');
  } finally {
    socket.destroy();
  }
}
