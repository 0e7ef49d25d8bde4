import type { Logger } from '@picket/protocol';
import type { ConfigureParams } from '../wire/control.js';
import type {
  AuthorizeResultInput,
  ConnInfo,
  ConnResultInput,
  DisconnectInfo,
  RequestInfo,
  ResponseModResultInput,
  UpstreamResponseInfo,
} from '../wire/types.js';

/** What a hook is told besides its payload. */
export interface ProxHookContext {
  /** aborts when the hook socket connection the call came on closes (prox gave up on it) */
  readonly signal: AbortSignal;
  /** a stable id of the hook socket connection, for logs */
  readonly connectionId: string;
  /** the plugin's logger (stderr unless configured otherwise; never stdout) */
  readonly logger: Logger;
}

type Answer<T> = T | undefined | Promise<T | undefined>;

/**
 * prox-native hooks, as the Go SDK has them. Only the hooks present are declared in `ready`
 * and served. Returning `undefined` means allow (on_request, on_connect) or no change
 * (on_response), as a nil result does in the SDK; a hook that throws or returns something
 * that cannot be encoded is answered deny (on_request: 500 with picket's handler-error body;
 * on_response: status 500; on_connect: `ok:false`), never allow.
 */
export interface ProxHooks {
  /** each `configure` from prox (one per bound route, again after a reload) */
  onConfigure?(params: ConfigureParams, ctx: ProxHookContext): void | Promise<void>;
  /** `on_request`: gate an HTTP request */
  onRequest?(req: RequestInfo, ctx: ProxHookContext): Answer<AuthorizeResultInput>;
  /** `on_response`: change the upstream response's status or headers */
  onResponse?(
    req: RequestInfo,
    resp: UpstreamResponseInfo,
    ctx: ProxHookContext,
  ): Answer<ResponseModResultInput>;
  /** `on_connect`: gate an L4 connection */
  onConnect?(conn: ConnInfo, ctx: ProxHookContext): Answer<ConnResultInput>;
  /** `on_disconnect`: statistics of a finished L4 connection; never answered */
  onDisconnect?(info: DisconnectInfo, ctx: ProxHookContext): void | Promise<void>;
}
