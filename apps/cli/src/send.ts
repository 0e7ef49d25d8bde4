import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import {
  type AgentResponse,
  decisionKind,
  type EventType,
  escapeForLog,
  type HeaderOp,
  type Headers,
  jsonForLog,
  putOwn,
} from '@picket/protocol';
import { formatEndpoint, V2Transport } from '@picket/transport';
import {
  CLIENT_OPTIONS_HELP,
  clientCommand,
  connectFailure,
  describeFailure,
  EXIT_FAILURE,
  EXIT_OK,
  intOption,
  ms,
  UsageError,
} from './common.js';

export const SEND_HELP = `Usage: picket send <endpoint> [options]

Sends one request's lifecycle to an agent, as a proxy would: request headers,
the request body in chunks, response headers, request complete. When the agent
does not allow the request, the body and response are skipped. Prints each
answer and the final decision.

Request options:
  --method <m>             HTTP method (default GET)
  --uri <uri>              path and query (default /)
  -H, --header <h>         request header "name: value" (repeatable)
  --body <text|@file>      request body, literal or read from a file
  --chunk-size <bytes>     body chunk size (default 65536)
  --client-ip <ip>         client address in the metadata (default 127.0.0.1)
  --status <code>          upstream response status (default 200)
  --response-header <h>    response header "name: value" (repeatable)
${CLIENT_OPTIONS_HELP}

Examples:
  picket send /tmp/denylist.sock --uri /admin/secret
  picket send 127.0.0.1:50051 --method POST --uri /api -H 'content-type: application/json' --body '{"a":1}'
  picket send /tmp/waf.sock --body @payload.bin --chunk-size 16384 --json`;

function headerList(command: string, flag: string, values: string[] | undefined): Headers {
  const headers: Headers = {};
  for (const raw of values ?? []) {
    const i = raw.indexOf(':');
    const name = (i < 0 ? '' : raw.slice(0, i)).trim().toLowerCase();
    if (name === '' || /\s/.test(name)) {
      throw new UsageError(`--${flag} "${raw}": expected "name: value"`, command);
    }
    const value = raw.slice(i + 1).trim();
    // own entries only: `-H 'constructor: x'` or `-H '__proto__: x'` are headers like any other
    if (Object.hasOwn(headers, name)) headers[name]?.push(value);
    else putOwn(headers, name, [value]);
  }
  return headers;
}

function bodyOf(value: string | undefined): Uint8Array {
  if (value === undefined) return new Uint8Array(0);
  if (value.startsWith('@')) {
    const file = value.slice(1);
    try {
      return new Uint8Array(readFileSync(file));
    } catch (err) {
      throw new UsageError(`--body: cannot read ${file}: ${(err as Error).message}`, 'send');
    }
  }
  return new TextEncoder().encode(value);
}

function describeOp(op: HeaderOp): string {
  if ('set' in op) return `set ${op.set.name}: ${op.set.value}`;
  if ('add' in op) return `add ${op.add.name}: ${op.add.value}`;
  return `remove ${op.remove.name}`;
}

function describeDecision(r: AgentResponse): string {
  const d = r.decision;
  if (d === 'allow') return 'allow';
  if ('block' in d) return `block ${d.block.status}${d.block.body ? ` "${d.block.body}"` : ''}`;
  if ('redirect' in d) return `redirect ${d.redirect.status} ${d.redirect.url}`;
  return `challenge ${d.challenge.challenge_type}`;
}

interface Step {
  event: EventType;
  index?: number;
  ms: number;
  response: AgentResponse;
}

/** `picket send`. */
export async function send(args: string[]): Promise<number> {
  const cmd = clientCommand(
    'send',
    args,
    {
      method: { type: 'string' },
      uri: { type: 'string' },
      header: { type: 'string', short: 'H', multiple: true },
      body: { type: 'string' },
      'chunk-size': { type: 'string' },
      'client-ip': { type: 'string' },
      status: { type: 'string' },
      'response-header': { type: 'string', multiple: true },
    },
    SEND_HELP,
  );
  if (cmd === undefined) return EXIT_OK;
  const { values: v, ep, agentId, options, timeoutMs } = cmd;
  const headers = headerList('send', 'header', v.header);
  const responseHeaders = headerList('send', 'response-header', v['response-header']);
  const body = bodyOf(v.body);
  const chunkSize = intOption('send', 'chunk-size', v['chunk-size'], 65_536, 1);
  const status = intOption('send', 'status', v.status, 200, 100);
  const method = (v.method ?? 'GET').toUpperCase();
  const uri = v.uri ?? '/';
  if (!uri.startsWith('/') && uri !== '*') throw new UsageError(`--uri must start with /`, 'send');
  const clientIp = v['client-ip'] ?? '127.0.0.1';
  if (body.byteLength > 0 && headers['content-length'] === undefined) {
    headers['content-length'] = [String(body.byteLength)];
  }

  let t: V2Transport;
  try {
    t = await V2Transport.connect(agentId, ep, options);
  } catch (err) {
    process.stderr.write(`picket send: ${connectFailure(err, ep)}\n`);
    return EXIT_FAILURE;
  }
  const cid = randomUUID();
  const steps: Step[] = [];
  const call = async (
    event: EventType,
    fn: () => Promise<AgentResponse>,
    index?: number,
  ): Promise<AgentResponse> => {
    const at = performance.now();
    const response = await fn();
    steps.push({
      event,
      ...(index !== undefined && { index }),
      ms: performance.now() - at,
      response,
    });
    return response;
  };
  const started = performance.now();
  let final: AgentResponse | undefined;
  try {
    const call0 = { timeoutMs };
    final = await call('request_headers', () =>
      t.sendRequestHeaders(
        {
          metadata: {
            correlation_id: cid,
            request_id: cid,
            client_ip: clientIp,
            client_port: 0,
            server_name: headers.host?.[0] ?? null,
            protocol: 'HTTP/1.1',
            timestamp: new Date().toISOString(),
          },
          method,
          uri,
          headers,
        },
        call0,
      ),
    );
    let sent = 0;
    for (let i = 0; final.decision === 'allow' && sent < body.byteLength; i++) {
      const data = body.subarray(sent, sent + chunkSize);
      sent += data.byteLength;
      final = await call(
        'request_body_chunk',
        () =>
          t.sendRequestBodyChunk(
            {
              correlation_id: cid,
              data,
              is_last: sent >= body.byteLength,
              total_size: body.byteLength,
              chunk_index: i,
              bytes_received: sent,
            },
            call0,
          ),
        i,
      );
    }
    const blocked = final.decision !== 'allow';
    if (!blocked) {
      final = await call('response_headers', () =>
        t.sendResponseHeaders({ correlation_id: cid, status, headers: responseHeaders }, call0),
      );
    }
    const d = final.decision;
    const outcome = typeof d === 'object' && 'block' in d ? d.block.status : status;
    await call('request_complete', () =>
      t.sendRequestComplete(
        {
          correlation_id: cid,
          status: outcome,
          duration_ms: Math.round(performance.now() - started),
          request_body_size: blocked ? 0 : body.byteLength,
          response_body_size: 0,
          upstream_attempts: blocked ? 0 : 1,
          error: null,
        },
        call0,
      ),
    );
  } catch (err) {
    process.stderr.write(`picket send: request failed: ${describeFailure(err, ep.endpoint)}\n`);
    await t.close().catch(() => {});
    if (v.json) {
      process.stdout.write(
        `${jsonForLog({ ok: false, endpoint: ep.endpoint, correlationId: cid, steps, error: describeFailure(err, ep.endpoint) }, 2)}\n`,
      );
    }
    return EXIT_FAILURE;
  }
  await t.close().catch(() => {});
  // the decision is the last one about the request itself (request_complete only audits)
  const decisionStep = [...steps].reverse().find((s) => s.event !== 'request_complete');
  const decision = decisionStep?.response ?? final;
  if (v.json) {
    process.stdout.write(
      `${jsonForLog(
        {
          ok: true,
          endpoint: ep.endpoint,
          transport: t.kind,
          agentId: t.capabilities.agent_id,
          correlationId: cid,
          decision: decisionKind(decision.decision),
          response: decision,
          steps,
        },
        2,
      )}\n`,
    );
    return EXIT_OK;
  }
  // the agent's answers (header values, tags, its id) are a peer's text: escaped per line
  const say = (line: string) => process.stdout.write(`${escapeForLog(line)}\n`);
  say(`${method} ${uri} → ${formatEndpoint(ep)} (${t.kind}, agent ${t.capabilities.agent_id})`);
  for (const s of steps) {
    const name = s.index !== undefined ? `${s.event}#${s.index}` : s.event;
    const r = s.response;
    const extras: string[] = [];
    if (r.needs_more) extras.push('needs_more');
    const line = `  ${name.padEnd(22)} ${describeDecision(r).padEnd(12)} ${ms(s.ms).padStart(9)}${extras.length ? `  (${extras.join(', ')})` : ''}`;
    say(line);
    for (const op of r.request_headers) say(`      request  ${describeOp(op)}`);
    for (const op of r.response_headers) say(`      response ${describeOp(op)}`);
    if (r.audit.tags.length) say(`      tags     ${r.audit.tags.join(', ')}`);
    if (r.audit.reason_codes.length) say(`      reasons  ${r.audit.reason_codes.join(', ')}`);
  }
  say(`decision: ${describeDecision(decision)}`);
  return EXIT_OK;
}
