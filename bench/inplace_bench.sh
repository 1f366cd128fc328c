#!/usr/bin/env bash
# Runs the in-place serving benchmark (not a test): serve --source time to ready and peak RSS after pulling
# every image, one tar against the same tar split into chunks. Extra arguments go to bench/inplace_bench.ts,
# e.g. --size 8G --parts 4 --out /tmp/x.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
command -v /usr/bin/time >/dev/null 2>&1 || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
exec deno run --allow-all --frozen bench/inplace_bench.ts "$@"
