#!/usr/bin/env bash
# Runs the read-once benchmark of `load --serve` (not a test): the archive's bytes read while clients pull during the
# load (counted with strace), and the load's time with and without clients against plain `load`.
# Extra arguments go to bench/loadserve_bench.ts, e.g. --size 8G (default 1G), --disk /tmp, --runs 3, --clients 4.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
command -v /usr/bin/time >/dev/null 2>&1 || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
exec deno run --allow-all --frozen bench/loadserve_bench.ts "$@"
