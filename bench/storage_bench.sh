#!/usr/bin/env bash
# Runs the storage-mode benchmark (not a test). Extra arguments go to
# bench/storage_bench.ts, e.g. --images 16 --layer-mb 16 --runs 3.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
command -v /usr/bin/time >/dev/null 2>&1 || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
exec deno run --allow-all --frozen bench/storage_bench.ts "$@"
