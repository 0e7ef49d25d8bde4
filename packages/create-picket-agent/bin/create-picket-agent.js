#!/usr/bin/env node
// `npm create picket-agent <dir>` runs this. It lives outside dist/ so that a fresh checkout
// can link it before anything is built; the command itself is the compiled dist/index.js.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/index.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    'create-picket-agent: not built (dist/index.js is missing): run `pnpm build` in the picket checkout first\n',
  );
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = main(process.argv.slice(2));
