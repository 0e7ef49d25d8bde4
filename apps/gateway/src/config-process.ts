/**
 * Validation of supervised agents: `agents.<name>.command` (with `env`, `cwd`,
 * `ready_timeout_ms`, `stop_grace_ms`), prox plugins (`endpoint: prox` with a
 * command, or `prox+exec:/path args`), and `upstreams.<name>.targets_from`.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseProxExec } from '@picket/prox';
import { connectTarget } from '@picket/supervisor';
import { detectTransport } from '@picket/transport';
import { type Checker, isObj, type Obj } from './config-check.js';
import {
  type AgentConfig,
  type AgentProcessConfig,
  DEFAULT_AGENT_READY_TIMEOUT_MS,
  DEFAULT_AGENT_STOP_GRACE_MS,
  MAX_AGENT_STOP_GRACE_MS,
  type RouteConfig,
  type UpstreamConfig,
} from './config-types.js';

/** The agent keys this module reads. */
export const PROCESS_KEYS = [
  'command',
  'env',
  'cwd',
  'ready_timeout_ms',
  'stop_grace_ms',
  'targets_only',
] as const;

/** `endpoint: prox`: the command is a prox plugin. */
export const PROX_ENDPOINT = 'prox';

/** What {@link parseAgentProcess} found; `ok: false` when something was wrong (already reported). */
export type ProcessPart =
  | { ok: true; process: AgentProcessConfig | undefined; prox: AgentConfig['prox'] }
  | { ok: false };

/**
 * The process part of an agent: its command (from `command`, or from a `prox+exec:`
 * endpoint), environment, working directory and limits, and whether it is a prox plugin.
 * `endpoint` is the agent's (already checked) endpoint, undefined when it was missing or bad.
 */
export function parseAgentProcess(
  c: Checker,
  v: Obj,
  path: string,
  endpoint: string | undefined,
  dir: string,
): ProcessPart {
  const before = c.problems.length;
  const isProxExec = endpoint?.trim().toLowerCase().startsWith('prox+exec:') === true;
  const isProx = endpoint === PROX_ENDPOINT || isProxExec;
  let command: string[] | undefined;
  if (v.command !== undefined) {
    command = parseCommand(c, v.command, `${path}.command`);
    if (isProxExec) {
      c.fail(
        `${path}.command`,
        'the prox+exec: endpoint already names the plugin and its arguments; give either command with "endpoint: prox", or prox+exec: alone',
      );
    } else if (endpoint !== undefined && !isProx) {
      const kind = detectTransport(endpoint).kind;
      if (kind === 'reverse') {
        c.fail(
          `${path}.command`,
          `a reverse endpoint (${endpoint}) is one the agent dials; the gateway cannot tell when it is ready. Give the agent a listening endpoint (unix:/path, host:port) for command, or run it yourself`,
        );
      } else {
        try {
          connectTarget(endpoint);
        } catch (e) {
          c.fail(`${path}.endpoint`, `cannot be checked for readiness: ${(e as Error).message}`);
        }
      }
    }
  } else if (isProxExec && endpoint !== undefined) {
    try {
      command = parseProxExec(endpoint).command;
    } catch (e) {
      c.fail(`${path}.endpoint`, (e as Error).message);
    }
  } else if (endpoint === PROX_ENDPOINT) {
    c.fail(`${path}.command`, '"endpoint: prox" needs the plugin\'s command: [program, args…]');
  }
  const supervised = command !== undefined || v.command !== undefined || isProx;
  if (!supervised) {
    for (const k of PROCESS_KEYS) {
      if (v[k] !== undefined) {
        c.fail(`${path}.${k}`, 'only for an agent the gateway starts (give command)');
      }
    }
    return c.problems.length === before
      ? { ok: true, process: undefined, prox: undefined }
      : { ok: false };
  }
  if (v.targets_only !== undefined && !isProx) {
    c.fail(`${path}.targets_only`, 'only for prox plugins ("endpoint: prox" or prox+exec:)');
  } else if (v.targets_only !== undefined && typeof v.targets_only !== 'boolean') {
    c.fail(`${path}.targets_only`, 'must be true or false');
  }
  const env = parseEnv(c, v.env, `${path}.env`);
  let cwd: string | undefined = dir;
  if (v.cwd !== undefined) {
    const given = c.str(v.cwd, `${path}.cwd`);
    cwd = given === undefined ? undefined : resolve(dir, given);
    if (given !== undefined && cwd !== undefined && !isDirectory(cwd)) {
      cwd = c.fail(`${path}.cwd`, `"${given}" (${cwd}) is not a directory`);
    }
  }
  const readyTimeoutMs =
    v.ready_timeout_ms === undefined
      ? DEFAULT_AGENT_READY_TIMEOUT_MS
      : c.int(v.ready_timeout_ms, `${path}.ready_timeout_ms`, 1, 600_000);
  const stopGraceMs =
    v.stop_grace_ms === undefined
      ? DEFAULT_AGENT_STOP_GRACE_MS
      : c.int(v.stop_grace_ms, `${path}.stop_grace_ms`, 1, MAX_AGENT_STOP_GRACE_MS);
  if (
    c.problems.length > before ||
    command === undefined ||
    env === undefined ||
    cwd === undefined ||
    readyTimeoutMs === undefined ||
    stopGraceMs === undefined
  ) {
    return { ok: false };
  }
  return {
    ok: true,
    process: { command, env, cwd, readyTimeoutMs, stopGraceMs },
    prox: isProx ? { targetsOnly: v.targets_only === true } : undefined,
  };
}

function parseCommand(c: Checker, v: unknown, path: string): string[] | undefined {
  if (!Array.isArray(v) || v.length === 0) {
    return c.fail(path, 'must be a non-empty list of strings: [program, args…]');
  }
  let ok = true;
  for (const [i, w] of v.entries()) {
    if (typeof w !== 'string') {
      ok = c.fail(`${path}[${i}]`, `must be a string (got ${typeOf(w)})`) ?? false;
    } else if (w.includes('\0')) {
      ok = c.fail(`${path}[${i}]`, 'must not contain a NUL character') ?? false;
    } else if (i === 0 && w === '') {
      ok = c.fail(`${path}[0]`, 'the program must not be empty') ?? false;
    }
  }
  return ok ? (v as string[]) : undefined;
}

function parseEnv(c: Checker, v: unknown, path: string): Record<string, string> | undefined {
  if (v === undefined) return {};
  if (!isObj(v)) return c.fail(path, 'must map variable names to string values');
  const env: Record<string, string> = {};
  let ok = true;
  for (const [k, val] of Object.entries(v)) {
    if (k === '' || k.includes('=') || k.includes('\0')) {
      ok = c.fail(`${path}.${k}`, 'a variable name must be non-empty, without "=" or NUL') ?? false;
    } else if (typeof val !== 'string') {
      ok =
        c.fail(
          `${path}.${k}`,
          `must be a string (got ${typeOf(val)}; quote numbers and booleans in YAML)`,
        ) ?? false;
    } else if (val.includes('\0')) {
      ok = c.fail(`${path}.${k}`, 'must not contain a NUL character') ?? false;
    } else env[k] = val;
  }
  return ok ? env : undefined;
}

function typeOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v;
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * `targets_from` of each upstream: the agent must exist and be a prox plugin. Run after
 * the agents are parsed (upstreams come first in the file's validation).
 */
export function checkTargetsFrom(
  c: Checker,
  upstreams: ReadonlyMap<string, UpstreamConfig>,
  agents: ReadonlyMap<string, AgentConfig>,
  knownAgents: ReadonlySet<string>,
): void {
  for (const u of upstreams.values()) {
    const from = u.targetsFrom;
    if (from === undefined) continue;
    const path = `upstreams.${u.name}.targets_from`;
    if (!knownAgents.has(from)) c.fail(path, `unknown agent "${from}"`);
    else {
      const a = agents.get(from);
      if (a && a.prox === undefined) {
        c.fail(
          path,
          `agent "${from}" is not a prox plugin: only a prox plugin ("endpoint: prox" with command, or prox+exec:) pushes targets`,
        );
      }
    }
  }
}

/** The route bindings a prox plugin agent gets `configure` for: the routes that use it. */
export function proxBindings(
  agent: string,
  routes: readonly RouteConfig[],
  upstreams: ReadonlyMap<string, UpstreamConfig>,
): { routeId: string; match: { domain: string; path: string } }[] {
  return routes
    .filter((r) => r.agents.includes(agent) || upstreams.get(r.upstream)?.targetsFrom === agent)
    .map((r) => ({ routeId: r.name, match: { domain: r.host ?? '', path: r.pathPrefix } }));
}
