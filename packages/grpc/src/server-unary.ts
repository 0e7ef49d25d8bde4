/** ProcessEvent, the unary call: one event, one answer, no stream state. */
import { type ServerUnaryCall, type sendUnaryData, status } from '@grpc/grpc-js';
import { LazyAbort, requestContext } from '@picket/protocol/internal';
import { handshakeRequestFromProto } from './convert.js';
import { encodeAgentToProxy, type ProxyToAgentMsg } from './proto.js';
import type { ServerAnswers } from './server-answers.js';
import { decodeEvent } from './server-events.js';
import { nextConnectionNumber, pong } from './server-stream.js';

/** Answers one ProcessEvent call (a draining server refuses it with UNAVAILABLE). */
export async function processEvent(
  answers: ServerAnswers,
  draining: boolean,
  call: ServerUnaryCall<ProxyToAgentMsg, Buffer>,
  callback: sendUnaryData<Buffer>,
): Promise<void> {
  const msg = call.request;
  if (draining) {
    callback({ code: status.UNAVAILABLE, details: 'agent is draining' });
    return;
  }
  if (msg.message === 'handshake') {
    const decision = await answers.handshake(handshakeRequestFromProto(msg.handshake ?? {}));
    callback(null, encodeAgentToProxy({ handshake: answers.handshakeReply(decision) }));
    return;
  }
  if (msg.message === 'ping') {
    callback(null, encodeAgentToProxy(pong(msg)));
    return;
  }
  const ev = decodeEvent(msg);
  if (!ev) {
    callback({ code: status.INVALID_ARGUMENT, details: 'Unsupported event type' });
    return;
  }
  const abort = new LazyAbort();
  call.on('cancelled', () => abort.abort('client_disconnect'));
  const connectionId = `grpc-unary-${nextConnectionNumber()}`;
  const ctx = requestContext(abort, ev.cid, 'grpc', connectionId, undefined);
  const started = performance.now();
  const response = await answers.invoke(ev, ctx, connectionId);
  const bytes =
    response === undefined
      ? undefined
      : answers.encode(response, ev, connectionId, performance.now() - started);
  if (bytes === undefined) {
    // errorPolicy 'close'
    callback({ code: status.INTERNAL, details: `agent handler failed on ${ev.type} ${ev.cid}` });
    return;
  }
  callback(null, bytes);
}
