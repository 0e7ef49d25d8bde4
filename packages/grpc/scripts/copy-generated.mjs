// tsc does not copy the generated JavaScript and .d.ts files: put the generated protobuf module
// next to the compiled code that imports it (dist/generated/agent_v2.{js,d.ts}).
import { cpSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const pkg = fileURLToPath(new URL('..', import.meta.url));
cpSync(`${pkg}/src/generated`, `${pkg}/dist/generated`, { recursive: true });
