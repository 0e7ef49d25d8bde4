import { picket } from '@picket/http';
import { createPool } from '@picket/transport';
import express from 'express';

const pool = createPool();
await pool.addAgent('waf', process.env.WAF_SOCKET ?? '/run/picket/waf.sock');

const app = express();
app.use(picket({ pool, agents: ['waf'] })); // before any body parser
app.use(express.json());
app.get('/', (_req, res) => res.send('hello from express\n'));
app.listen(Number(process.env.PORT ?? 3000));
