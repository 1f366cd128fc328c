#!/usr/bin/env bash
# Runs issue 14's benchmark (not a test): load, verify and serve against their floors on the release-like payload.
# Extra arguments go to bench/perf_bench.ts, e.g. --size 8G (default 1G), --disk /tmp, --tmpfs /dev/shm, --runs 3.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
command -v /usr/bin/time >/dev/null 2>&1 || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
exec deno run --allow-all --frozen bench/perf_bench.ts "$@"
