#!/usr/bin/env bash
# Runs the serving benchmark (not a test): built-in registry vs docker-registry,
# and time to ready in place vs load-then-serve. Extra arguments go to
# bench/serve_bench.ts, e.g. --images 40 --layer-mb 26 --clients 8.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
command -v /usr/bin/time >/dev/null 2>&1 || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
exec deno run --allow-all --frozen bench/serve_bench.ts "$@"
