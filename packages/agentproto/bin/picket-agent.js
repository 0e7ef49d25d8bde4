#!/usr/bin/env node
// The `picket-agent` command (the agentproto agent). It lives outside dist/ so that installing a
// fresh checkout can link it before anything is built; the program itself is dist/agent-main.js.
import { existsSync } from 'node:fs';

const main = new URL('../dist/agent-main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    'picket-agent: not built (dist/agent-main.js is missing): run `pnpm build` in the picket checkout first\n',
  );
  process.exit(1);
}
await import(main.href);
