/**
 * How the gRPC agent server turns a handler's result into the bytes it writes:
 * the check, the error policy (shared with every picket server), the size limit,
 * the handshake answer.
 */
import {
  type AgentHandler,
  AgentProtocolError,
  type AgentResponse,
  ErrorCode,
  type ErrorPolicy,
  type HandlerErrorCause,
  type HandshakeDecision,
  type HandshakeRequest,
  handlerErrorResponse,
  PROTOCOL_VERSION,
  type RequestContext,
} from '@picket/protocol';
import { type AgentTracing, EVENT_HOOK, errorAnswer, runHook } from '@picket/protocol/internal';
import { agentResponseToProto, capabilitiesToProto } from './convert.js';
import { encodeAgentResponseFast } from './fast-paths.js';
import type { Logger } from './logger.js';
import { encodeAgentToProxy, type IHandshakeResponse } from './proto.js';
import type { DecodedEvent } from './server-events.js';

/** Settings the answers depend on. */
export interface AnswerOptions {
  errorPolicy: ErrorPolicy;
  maxMessageSize: number;
  log: Logger;
  /** a span per event (the server's `tracer` option) */
  tracing?: AgentTracing | undefined;
}

/**
 * The handler of one server with everything between its result and the wire. An
 * `undefined` answer means the error policy says close (the stream or call ends
 * with INTERNAL).
 */
export class ServerAnswers {
  constructor(
    readonly handler: AgentHandler,
    private readonly o: AnswerOptions,
  ) {
    this.tracing = o.tracing;
  }

  /** a span per event, when the server has a tracer */
  readonly tracing: AgentTracing | undefined;

  /** The handler's result when it is an AgentResponse; else the error policy's answer. */
  checked(r: unknown, ev: DecodedEvent, connectionId: string): AgentResponse | undefined {
    if (!r || typeof r !== 'object' || (r as AgentResponse).decision === undefined) {
      return this.#policy(
        new AgentProtocolError(
          ErrorCode.HandlerError,
          `${EVENT_HOOK[ev.type]} returned no AgentResponse`,
        ),
        'INVALID_RESPONSE',
        ev,
        connectionId,
      );
    }
    return r as AgentResponse;
  }

  /** A handler threw (or its promise rejected): logged, answered by the error policy. */
  failed(err: unknown, ev: DecodedEvent, connectionId: string): AgentResponse | undefined {
    const e = AgentProtocolError.from(err, ErrorCode.HandlerError, `${EVENT_HOOK[ev.type]} failed`);
    this.o.log.warn('handler failed', { connectionId, correlationId: ev.cid, error: e.message });
    return this.#policy(e, 'HANDLER_ERROR', ev, connectionId);
  }

  /** Runs the hook (no hook: the default answer) and awaits it; failures go through the policy. */
  async invoke(
    ev: DecodedEvent,
    ctx: RequestContext,
    connectionId: string,
  ): Promise<AgentResponse | undefined> {
    try {
      const r = await runHook(this.handler, ev.type, ev.event, ctx, this.tracing);
      return this.checked(r, ev, connectionId);
    } catch (err) {
      return this.failed(err, ev, connectionId);
    }
  }

  #policy(
    error: AgentProtocolError,
    cause: HandlerErrorCause,
    ev: DecodedEvent,
    connectionId: string,
  ): AgentResponse | undefined {
    const info = {
      cause,
      eventType: ev.type,
      correlationId: ev.cid,
      connectionId,
      transport: 'grpc' as const,
    };
    return errorAnswer(this.o.errorPolicy, error, info, this.o.log);
  }

  /**
   * Encodes the reply; an unencodable or oversized answer is replaced through the error
   * policy (undefined: close).
   */
  encode(r: AgentResponse, ev: DecodedEvent, connectionId: string, ms: number): Buffer | undefined {
    let cause: HandlerErrorCause;
    let error: AgentProtocolError;
    try {
      const bytes =
        encodeAgentResponseFast(r, ev.cid, ms) ??
        encodeAgentToProxy({ response: agentResponseToProto(r, ev.cid, ms) });
      if (bytes.length <= this.o.maxMessageSize) return bytes;
      cause = 'RESPONSE_TOO_LARGE';
      error = new AgentProtocolError(
        ErrorCode.MessageTooLarge,
        `response to ${ev.cid} is ${bytes.length} bytes, over the ${this.o.maxMessageSize}-byte limit`,
      );
    } catch (err) {
      cause = 'INVALID_RESPONSE';
      error = AgentProtocolError.from(err, ErrorCode.HandlerError, 'unusable AgentResponse');
    }
    this.o.log.warn('handler response replaced', {
      connectionId,
      correlationId: ev.cid,
      error: error.message,
    });
    const answer = this.#policy(error, cause, ev, connectionId);
    if (answer === undefined) return undefined;
    try {
      const bytes = encodeAgentToProxy({ response: agentResponseToProto(answer, ev.cid, ms) });
      if (bytes.length <= this.o.maxMessageSize) return bytes;
    } catch {
      // only a function policy's own answer can fail here
    }
    return encodeAgentToProxy({
      response: agentResponseToProto(handlerErrorResponse(ev.type, cause), ev.cid, ms),
    });
  }

  /** The handler's handshake decision (default accept); a throwing onHandshake refuses. */
  async handshake(request: HandshakeRequest): Promise<HandshakeDecision> {
    try {
      if (this.handler.onHandshake) {
        return await this.handler.onHandshake({ kind: 'handshake', request });
      }
      return { accept: true };
    } catch (err) {
      return { accept: false, error: `handshake handler failed: ${(err as Error).message}` };
    }
  }

  handshakeReply(decision: HandshakeDecision): IHandshakeResponse {
    const reply: IHandshakeResponse = {
      protocol_version: PROTOCOL_VERSION,
      capabilities: capabilitiesToProto(this.handler.capabilities()),
    };
    if (decision.accept) reply.success = true;
    else reply.error = decision.error;
    return reply;
  }

  /** The handler's agent id, '' if capabilities() throws. */
  agentId(): string {
    try {
      return this.handler.capabilities().agent_id;
    } catch {
      return '';
    }
  }
}
