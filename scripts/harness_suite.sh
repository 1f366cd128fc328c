#!/usr/bin/env bash
# Inside the harness container (the Containerfile's test stage): runs the test suite against the built isoload in
# /opt/isoload — the compiled binary when the build made one, else the bundle — says which, and ends with the
# suite's summary line in the plain form CI reads.
# Usage: bash scripts/harness_suite.sh [deno test args, e.g. --filter PATTERN] [paths; default tests/ src/]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x /opt/isoload/isoload ]; then
  export ISOLOAD_BIN=/opt/isoload/isoload
  echo "harness: testing the compiled binary ($ISOLOAD_BIN, $("$ISOLOAD_BIN" --version))"
elif [ -f /opt/isoload/isoload.js ]; then
  export ISOLOAD_BUNDLE=/opt/isoload/isoload.js
  echo "harness: testing the bundle ($ISOLOAD_BUNDLE, run with the compile task's permissions; no denort to compile)"
else
  echo "harness: nothing built in /opt/isoload" >&2
  exit 1
fi
# The tests run podman inside this container with their own vfs stores; the shared upstream files when mounted.
[ -d /shared ] && export ISOLOAD_SHARED=/shared
paths=()
args=()
for a in "$@"; do
  case "$a" in
    tests/* | src/*) paths+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
[ "${#paths[@]}" -gt 0 ] || paths=(tests/ src/)
log="$(mktemp)"
set +e
deno test --allow-all --unstable-net --frozen "${args[@]}" "${paths[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
summary="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -1 || true)"
rm -f "$log"
if [ -n "$summary" ]; then
  echo "tests: $(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary") passed, $(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary") failed"
fi
exit "$rc"
