#!/usr/bin/env bash
# Runs the load benchmark (not a test). Extra arguments go to bench/load_bench.ts,
# e.g. --images 40 --layer-mb 26 (about 1 GB, the default).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
command -v /usr/bin/time >/dev/null 2>&1 || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
exec deno run --allow-all --frozen bench/load_bench.ts "$@"
