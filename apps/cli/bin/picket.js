#!/usr/bin/env node
// The `picket` command. It lives outside dist/ so that installing a fresh checkout can link
// it before anything is built; the command itself is the compiled dist/main.js.
import { existsSync } from 'node:fs';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    'picket: the CLI is not built (dist/main.js is missing): run `pnpm build` in the picket checkout first\n',
  );
  process.exit(1);
}
await import(main.href);
