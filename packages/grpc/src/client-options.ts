/** Options of the proxy-side gRPC transport and the grpc-js channel options they become. */
import type { ChannelOptions } from '@grpc/grpc-js';
import { type ConfigUpdateRequest, DEFAULT_GRPC_MAX_MESSAGE_SIZE } from '@picket/protocol';
import type { Logger } from './logger.js';

/** HTTP/2 keepalive pings on the channel. */
export interface KeepaliveOptions {
  /** interval between keepalive pings (`grpc.keepalive_time_ms`) */
  timeMs?: number;
  /** how long to wait for the ping ack before the connection counts as dead (`grpc.keepalive_timeout_ms`) */
  timeoutMs?: number;
  /** ping even with no call active (`grpc.keepalive_permit_without_calls`) */
  permitWithoutCalls?: boolean;
}

/** Options of {@link AgentClientV2.connect}. */
export interface AgentClientV2Options {
  /** default per-call timeout in ms (default 30 000) */
  timeoutMs?: number;
  /** connect + handshake budget in ms (default: `timeoutMs`) */
  connectTimeoutMs?: number;
  /** `proxy_id` in the handshake (default `zentinel-proxy`, like the Rust proxy) */
  proxyId?: string;
  /** `proxy_version` in the handshake (default `0.6.20`) */
  proxyVersion?: string;
  /** sent as the handshake's `config_json` (default `{}`) */
  config?: unknown;
  /** also open the ControlStream (default true); an agent without it is tolerated */
  controlStream?: boolean;
  /** max message size in bytes, both directions (default 4 MiB, tonic's default) */
  maxMessageSize?: number;
  /** HTTP/2 keepalive (off unless set) */
  keepalive?: KeepaliveOptions;
  /** extra grpc-js channel options (applied last) */
  channelOptions?: ChannelOptions;
  /**
   * Answers a picket agent's config update request (sent back on the stream). Default:
   * accepted when at least one `configUpdate` listener is registered.
   */
  onConfigUpdate?(
    request: ConfigUpdateRequest,
  ):
    | { accepted: boolean; error?: string | null }
    | Promise<{ accepted: boolean; error?: string | null }>;
  logger?: Logger;
}

/** The grpc-js channel options for `options` (message limits, keepalive, then the caller's own). */
export function channelOptionsFor(options: AgentClientV2Options): ChannelOptions {
  const max = options.maxMessageSize ?? DEFAULT_GRPC_MAX_MESSAGE_SIZE;
  const channelOptions: ChannelOptions = {
    'grpc.max_receive_message_length': max,
    'grpc.max_send_message_length': max,
  };
  const ka = options.keepalive;
  if (ka?.timeMs !== undefined) channelOptions['grpc.keepalive_time_ms'] = ka.timeMs;
  if (ka?.timeoutMs !== undefined) channelOptions['grpc.keepalive_timeout_ms'] = ka.timeoutMs;
  if (ka?.permitWithoutCalls !== undefined) {
    channelOptions['grpc.keepalive_permit_without_calls'] = ka.permitWithoutCalls ? 1 : 0;
  }
  return { ...channelOptions, ...options.channelOptions };
}
