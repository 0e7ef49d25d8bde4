import { performance } from 'node:perf_hooks';
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
  numberOption,
  UsageError,
} from './common.js';

export const BENCH_HELP = `Usage: picket bench <endpoint> [options]

Sends request-headers events as fast as the agent answers them, from
--concurrency workers over --connections connections, for --duration seconds
or until --requests are done. Shows a live progress line on a terminal (stderr)
and ends with requests per second and latency percentiles.
Exit code 1 when any request failed.

Load options:
  --concurrency <n>        requests in flight at once (default 16)
  --duration <s>           run this long (default 5, unless --requests is given)
  --requests <n>           run until this many requests are done
  --connections <n>        connections to open (default 1)
  --uri <uri>              request uri (default /bench)
${CLIENT_OPTIONS_HELP}

Examples:
  picket bench /tmp/echo.sock --concurrency 64 --duration 10
  picket bench 127.0.0.1:50051 --requests 10000 --json`;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? 0;
}

/** `picket bench`. */
export async function bench(args: string[]): Promise<number> {
  const cmd = clientCommand(
    'bench',
    args,
    {
      concurrency: { type: 'string', short: 'c' },
      duration: { type: 'string', short: 'd' },
      requests: { type: 'string', short: 'n' },
      connections: { type: 'string' },
      uri: { type: 'string' },
    },
    BENCH_HELP,
  );
  if (cmd === undefined) return EXIT_OK;
  const { values: v, ep, agentId, options, timeoutMs } = cmd;
  const concurrency = intOption('bench', 'concurrency', v.concurrency, 16, 1);
  const connections = intOption('bench', 'connections', v.connections, 1, 1);
  if (v.requests !== undefined && v.duration !== undefined) {
    throw new UsageError('give --duration or --requests, not both', 'bench');
  }
  const requests =
    v.requests !== undefined ? intOption('bench', 'requests', v.requests, 0, 1) : undefined;
  const durationS = numberOption('bench', 'duration', v.duration, 5);
  if (ep.kind === 'reverse' && connections > 1) {
    throw new UsageError('a reverse endpoint gives one connection; drop --connections', 'bench');
  }
  const uri = v.uri ?? '/bench';

  const transports: V2Transport[] = [];
  try {
    for (let i = 0; i < connections; i++)
      transports.push(await V2Transport.connect(agentId, ep, options));
  } catch (err) {
    await Promise.allSettled(transports.map((t) => t.close()));
    process.stderr.write(`picket bench: ${connectFailure(err, ep)}\n`);
    return EXIT_FAILURE;
  }

  let latencies = new Float64Array(1 << 16);
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  let issued = 0;
  const started = performance.now();
  const deadline = requests === undefined ? started + durationS * 1000 : Number.POSITIVE_INFINITY;
  const more = () => (requests === undefined ? performance.now() < deadline : issued < requests);

  const tty = process.stderr.isTTY === true && !v.json;
  const showProgress = (): void => {
    const s = (performance.now() - started) / 1000;
    process.stderr.write(
      `\r  ${done} requests  ${(done / s).toFixed(0)} req/s  ${errors} errors  ${s.toFixed(1)} s `,
    );
  };
  const progress = tty ? setInterval(showProgress, 200) : undefined;

  const worker = async (w: number): Promise<void> => {
    const t = transports[w % transports.length] as V2Transport;
    while (more()) {
      const n = issued++;
      const cid = `bench-${process.pid}-${n}`;
      const at = performance.now();
      try {
        await t.sendRequestHeaders(
          {
            metadata: {
              correlation_id: cid,
              request_id: cid,
              client_ip: '127.0.0.1',
              client_port: 40000 + (n % 20000),
              protocol: 'HTTP/1.1',
              timestamp: new Date().toISOString(),
            },
            method: 'GET',
            uri,
            headers: { host: ['bench.local'], 'user-agent': ['picket-bench'] },
          },
          { timeoutMs },
        );
        if (done === latencies.length) {
          const grown = new Float64Array(latencies.length * 2);
          grown.set(latencies);
          latencies = grown;
        }
        latencies[done++] = performance.now() - at;
      } catch (err) {
        errors++;
        firstError ??= describeFailure(err, ep.endpoint);
        // a dead connection fails every call at once; don't spin on it
        if (!t.isHealthy()) break;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const elapsed = (performance.now() - started) / 1000;
  if (progress) {
    clearInterval(progress);
    showProgress();
    process.stderr.write('\r\x1b[K');
  }
  await Promise.allSettled(transports.map((t) => t.close()));

  const sorted = latencies.slice(0, done).sort();
  const result = {
    endpoint: ep.endpoint,
    transport: transports[0]?.kind,
    concurrency,
    connections,
    requests: done,
    errors,
    durationS: elapsed,
    requestsPerSecond: done / elapsed,
    latencyMs: {
      p50: percentile(sorted, 50),
      p95: percentile(sorted, 95),
      p99: percentile(sorted, 99),
      max: sorted.length ? (sorted[sorted.length - 1] ?? 0) : 0,
    },
    ...(firstError !== undefined && { firstError }),
  };
  if (v.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const l = result.latencyMs;
    const lines = [
      `endpoint  ${formatEndpoint(ep)} (${result.transport}), ${connections} connection(s), concurrency ${concurrency}`,
      `requests  ${done} in ${elapsed.toFixed(2)} s, ${errors} errors`,
      `rate      ${result.requestsPerSecond.toFixed(0)} req/s`,
      `latency   p50 ${ms(l.p50)}  p95 ${ms(l.p95)}  p99 ${ms(l.p99)}  max ${ms(l.max)}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (firstError !== undefined)
      process.stderr.write(`picket bench: first error: ${firstError}\n`);
  }
  return errors > 0 ? EXIT_FAILURE : EXIT_OK;
}
