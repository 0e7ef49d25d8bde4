/**
 * prox's control plane: one JSON object per line on the plugin's stdin (prox → plugin:
 * `configure`) and stdout (plugin → prox: the `{"result":"ok"}` acknowledgement and the pushes
 * `ready`, `set_targets`, `set_speed`, `log`). Encoders return the line with its `\n`; decoders
 * never throw: a line that cannot be used comes back as `{ kind: 'invalid', reason }`.
 */
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import type { HookName, SpeedLimit } from './types.js';

/**
 * Longest control line prox reads, newline included: its `bufio.Scanner` stops for good at
 * 64 KiB (and the plugin's stdout then blocks), so encoders refuse anything longer.
 */
export const MAX_CONTROL_LINE = 64 * 1024;

/** The acknowledgement a plugin writes for each `configure`, before `ready`. */
export const OK_LINE = '{"result":"ok"}\n';

/** Where a push applies: one route (`"*"`: every route with a balancer) or every route of an action. */
export type PushTarget = { routeId: string } | { action: string };

/** Levels of the `log` push. */
export type ProxLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The `configure` params: the bound route (`""` and no match for an autostart plugin). */
export interface ConfigureParams {
  /** `route_id`: `service:index` */
  routeId: string;
  /** `match`: the route's domain and path, absent for autostart plugins */
  match?: { domain: string; path: string };
}

/** A line prox wrote to the plugin's stdin. */
export type HostLine =
  | { kind: 'configure'; params: ConfigureParams }
  /** a method the plugin does not know (Go's SDK logs and skips it) */
  | { kind: 'unknown'; method: string }
  /** an empty line (skipped) */
  | { kind: 'empty' }
  | { kind: 'invalid'; reason: string };

/** A line a plugin wrote to its stdout. */
export type PluginLine =
  | { kind: 'ready'; socket: string; hooks: string[] }
  | {
      kind: 'set_targets';
      routeId: string;
      action: string;
      targets: string[];
      groups: Record<string, string[]>;
    }
  | ({ kind: 'set_speed'; routeId: string; action: string } & SpeedLimit)
  | { kind: 'log'; level: string; message: string; args: unknown[] }
  /** a line without `method`, such as `{"result":"ok"}` (prox ignores these) */
  | { kind: 'ack'; result: string; error: string }
  | { kind: 'unknown'; method: string }
  | { kind: 'empty' }
  | { kind: 'invalid'; reason: string };

function line(value: unknown): string {
  const text = `${JSON.stringify(value)}\n`;
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_CONTROL_LINE) {
    throw new AgentProtocolError(
      ErrorCode.MessageTooLarge,
      `control line of ${bytes} bytes exceeds prox's ${MAX_CONTROL_LINE}-byte line limit`,
    );
  }
  return text;
}

function invalidArg(message: string): AgentProtocolError {
  return new AgentProtocolError(ErrorCode.InvalidArgument, message);
}

function targetParams(target: PushTarget): Record<string, string> {
  if (target !== null && typeof target === 'object') {
    if ('routeId' in target && typeof target.routeId === 'string' && target.routeId !== '') {
      return { route_id: target.routeId };
    }
    if ('action' in target && typeof target.action === 'string' && target.action !== '') {
      return { action: target.action };
    }
  }
  throw invalidArg('push target must be { routeId } (a route id or "*") or { action }, non-empty');
}

function stringList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw invalidArg(`${what} must be an array of strings`);
  }
  return v as string[];
}

/** `{"method":"configure","params":{"route_id":…,"match":{…}}}`, as prox sends it. */
export function encodeConfigureLine(params: ConfigureParams): string {
  if (typeof params?.routeId !== 'string') throw invalidArg('configure routeId must be a string');
  const p: Record<string, unknown> = { route_id: params.routeId };
  if (params.match !== undefined) {
    const m: Record<string, string> = {};
    if (params.match.domain) m.domain = params.match.domain;
    if (params.match.path) m.path = params.match.path;
    p.match = m;
  }
  return line({ method: 'configure', params: p });
}

/** `ready{socket, hooks}`: the hook socket and the hooks the plugin serves. */
export function encodeReadyLine(socket: string, hooks: readonly HookName[]): string {
  if (typeof socket !== 'string' || socket === '') throw invalidArg('ready socket must be a path');
  return line({ method: 'ready', params: { socket, hooks: stringList(hooks, 'ready hooks') } });
}

/**
 * `set_targets`: a full replacement of the target list (an array) or of the grouped targets
 * (an object of key → list, for keyed balancers).
 */
export function encodeSetTargetsLine(
  target: PushTarget,
  targets: readonly string[] | Readonly<Record<string, readonly string[]>>,
): string {
  const params: Record<string, unknown> = targetParams(target);
  if (Array.isArray(targets)) {
    params.targets = stringList(targets, 'set_targets targets');
  } else if (targets !== null && typeof targets === 'object') {
    const groups: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(targets)) {
      groups[k] = stringList(v, `set_targets groups[${JSON.stringify(k)}]`);
    }
    params.groups = groups;
  } else {
    throw invalidArg('set_targets takes an array of targets or an object of groups');
  }
  return line({ method: 'set_targets', params });
}

/** `set_speed` (newer prox): a speed limit for a route or an action; 0 means unlimited. */
export function encodeSetSpeedLine(target: PushTarget, limit: Partial<SpeedLimit>): string {
  const params: Record<string, unknown> = targetParams(target);
  for (const [key, wire] of [
    ['downloadMbps', 'download_mbps'],
    ['uploadMbps', 'upload_mbps'],
  ] as const) {
    const v = limit[key] ?? 0;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw invalidArg(`set_speed ${key} must be a finite number >= 0`);
    }
    if (v !== 0) params[wire] = v;
  }
  if (limit.groupKey !== undefined && typeof limit.groupKey !== 'string') {
    throw invalidArg('set_speed groupKey must be a string');
  }
  if (limit.groupKey) params.group_key = limit.groupKey;
  return line({ method: 'set_speed', params });
}

const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

/** `log` (newer prox): a line in prox's log; `args` are slog-style key, value pairs. */
export function encodeLogLine(level: ProxLogLevel, message: string, args: unknown[] = []): string {
  if (!LEVELS.has(level)) throw invalidArg(`log level must be debug, info, warn or error`);
  if (typeof message !== 'string') throw invalidArg('log message must be a string');
  const params: Record<string, unknown> = { level, message };
  if (args.length > 0) params.args = args;
  return line({ method: 'log', params });
}

type Json = Record<string, unknown>;

function parse(text: string): { ok: true; value: Json } | { ok: false; reason: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not JSON (${(err as Error).message})` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, reason: 'not a JSON object' };
  }
  return { ok: true, value: value as Json };
}

/** A Go string field: absent or null → "", anything else but a string is an error. */
function str(o: Json, key: string, where: string): string {
  const v = o[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new TypeError(`${where}.${key} is not a string`);
  return v;
}

function obj(v: unknown, where: string): Json {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new TypeError(`${where} is not an object`);
  return v as Json;
}

function strList(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new TypeError(`${where} is not an array of strings`);
  }
  return v as string[];
}

function num(o: Json, key: string, where: string): number {
  const v = o[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number') throw new TypeError(`${where}.${key} is not a number`);
  return v;
}

function methodOf(o: Json): string | undefined {
  const m = o.method;
  return typeof m === 'string' && m !== '' ? m : undefined;
}

/**
 * Reads one line of prox → plugin control. As Go's SDK: a `configure` whose `params` are absent
 * or not an object is invalid (answered with nothing); `null` params read as empty.
 */
export function decodeHostLine(text: string): HostLine {
  const trimmed = text.replace(/\r$/, '');
  if (trimmed.trim() === '') return { kind: 'empty' };
  const parsed = parse(trimmed);
  if (!parsed.ok) return { kind: 'invalid', reason: parsed.reason };
  const method = methodOf(parsed.value);
  if (method === undefined) {
    const m = parsed.value.method;
    if (m !== undefined && m !== null && typeof m !== 'string') {
      return { kind: 'invalid', reason: 'method is not a string' };
    }
    return { kind: 'unknown', method: '' };
  }
  if (method !== 'configure') return { kind: 'unknown', method };
  if (!('params' in parsed.value)) return { kind: 'invalid', reason: 'configure without params' };
  try {
    const p = obj(parsed.value.params, 'params');
    const params: ConfigureParams = { routeId: str(p, 'route_id', 'params') };
    if (p.match !== undefined && p.match !== null) {
      const m = obj(p.match, 'params.match');
      params.match = {
        domain: str(m, 'domain', 'params.match'),
        path: str(m, 'path', 'params.match'),
      };
    }
    return { kind: 'configure', params };
  } catch (err) {
    return { kind: 'invalid', reason: (err as Error).message };
  }
}

/**
 * Reads one line of plugin → prox control (stdout). Lines without a method are `ack`s (prox
 * ignores them); a field of the wrong type makes the line invalid, as Go's json.Unmarshal does.
 */
export function decodePluginLine(text: string): PluginLine {
  const trimmed = text.replace(/\r$/, '');
  if (trimmed.trim() === '') return { kind: 'empty' };
  const parsed = parse(trimmed);
  if (!parsed.ok) return { kind: 'invalid', reason: parsed.reason };
  const o = parsed.value;
  try {
    const method = methodOf(o);
    if (method === undefined) {
      if (o.method !== undefined && o.method !== null && typeof o.method !== 'string') {
        return { kind: 'invalid', reason: 'method is not a string' };
      }
      return { kind: 'ack', result: str(o, 'result', 'line'), error: str(o, 'error', 'line') };
    }
    const p = obj(o.params, 'params');
    switch (method) {
      case 'ready':
        return {
          kind: 'ready',
          socket: str(p, 'socket', 'params'),
          hooks: strList(p.hooks, 'params.hooks'),
        };
      case 'set_targets': {
        const groups: Record<string, string[]> = {};
        for (const [k, v] of Object.entries(obj(p.groups, 'params.groups'))) {
          Object.defineProperty(groups, k, {
            value: strList(v, `params.groups[${JSON.stringify(k)}]`),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        return {
          kind: 'set_targets',
          routeId: str(p, 'route_id', 'params'),
          action: str(p, 'action', 'params'),
          targets: strList(p.targets, 'params.targets'),
          groups,
        };
      }
      case 'set_speed':
        return {
          kind: 'set_speed',
          routeId: str(p, 'route_id', 'params'),
          action: str(p, 'action', 'params'),
          downloadMbps: num(p, 'download_mbps', 'params'),
          uploadMbps: num(p, 'upload_mbps', 'params'),
          groupKey: str(p, 'group_key', 'params'),
        };
      case 'log': {
        const args = p.args ?? [];
        if (!Array.isArray(args)) throw new TypeError('params.args is not an array');
        return {
          kind: 'log',
          level: str(p, 'level', 'params'),
          message: str(p, 'message', 'params'),
          args,
        };
      }
      default:
        return { kind: 'unknown', method };
    }
  } catch (err) {
    return { kind: 'invalid', reason: (err as Error).message };
  }
}
