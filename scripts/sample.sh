#!/usr/bin/env bash
# The main job on a built-in sample: make a payload, load it, serve it, pull through it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
exec deno run --allow-all --frozen tools/sample.ts
