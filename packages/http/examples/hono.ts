import { serve } from '@hono/node-server';
import { withAgents } from '@picket/http';
import { createPool } from '@picket/transport';
import { Hono } from 'hono';

const pool = createPool();
await pool.addAgent('waf', process.env.WAF_SOCKET ?? '/run/picket/waf.sock');

const app = new Hono();
app.get('/', (c) => c.text('hello from hono\n'));
serve({
  fetch: withAgents(app.fetch, { pool, agents: ['waf'] }),
  port: Number(process.env.PORT ?? 3000),
});
