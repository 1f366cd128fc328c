#!/usr/bin/env bash
# Runs the replication benchmark (not a test): isoload load from a peer vs
# skopeo sync vs parallel curl. Extra arguments go to bench/replicate_bench.ts,
# e.g. --images 40 --layer-mb 26 --runs 3 --jobs 4.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
command -v /usr/bin/time >/dev/null 2>&1 || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
exec deno run --allow-all --frozen bench/replicate_bench.ts "$@"
