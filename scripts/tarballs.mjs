// `pnpm tarballs [folder]`: packs every publishable package (after `pnpm build`) into one folder,
// default ./picket-tarballs, as `pnpm publish` would ship them. Until the packages are on npm,
// a project outside this repository installs them all at once from there, so each finds its
// @picket siblings among the tarballs instead of asking the registry:
//   npm install /path/to/picket-tarballs/*.tgz
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { pack, publishablePackages } from './check-packages.mjs';

// pnpm runs root scripts in the root; a relative folder means where the user typed the command
const dest = resolve(process.env.INIT_CWD ?? process.cwd(), process.argv[2] ?? 'picket-tarballs');
mkdirSync(dest, { recursive: true });
try {
  for (const pkg of publishablePackages()) console.log(pack(pkg, dest));
} catch (err) {
  console.error(`tarballs: ${err.message}`);
  process.exitCode = 1;
}
console.log(`\nIn your project: npm install ${dest}/*.tgz`);
