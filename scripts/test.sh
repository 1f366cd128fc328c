#!/usr/bin/env bash
# Runs the whole test suite with the real tools. Installs what it needs first.
# Usage: bash scripts/test.sh [deno test filters...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
deno task bundle >/dev/null
log="$(mktemp)"
set +e
deno test --allow-all --unstable-net --frozen "$@" tests/ src/ 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# Deno's summary ("ok | 12 passed | 0 failed") in the plain form CI reads.
summary="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -1 || true)"
if [ -n "$summary" ]; then
  passed="$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")"
  failed="$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")"
  echo "tests: $passed passed, $failed failed"
fi
rm -f "$log"
exit "$rc"
