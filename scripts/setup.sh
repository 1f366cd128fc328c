#!/usr/bin/env bash
# Installs what isoload's sample, tests and benchmarks need, once: Deno from the
# npm package (pinned), and the real tools from Debian packages. Idempotent.
# Source it (". scripts/setup.sh") to get deno on PATH.
set -euo pipefail
ISOLOAD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DENO_VERSION=2.9.6
TOOLS="$ISOLOAD_ROOT/.tools"

need_apt=()
for pair in strace:strace skopeo:skopeo docker-registry:docker-registry podman:podman runc:runc umoci:umoci busybox:busybox-static tar:tar ip:iproute2 systemd-analyze:systemd containerd:containerd; do
  cmd="${pair%%:*}" pkg="${pair##*:}"
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# busybox must be the static build: images in the fixtures run it with no libc.
if command -v busybox >/dev/null 2>&1 && ! file -L "$(command -v busybox)" 2>/dev/null | grep -q static; then
  need_apt+=(busybox-static)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need_apt[@]}" file >/dev/null
fi

if [ ! -x "$TOOLS/node_modules/.bin/deno" ] || [ "$("$TOOLS/node_modules/.bin/deno" --version 2>/dev/null | head -1 | cut -d' ' -f2)" != "$DENO_VERSION" ]; then
  echo "setup: installing deno $DENO_VERSION from npm into $TOOLS" >&2
  mkdir -p "$TOOLS"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS" "deno@$DENO_VERSION" >/dev/null
fi
export PATH="$TOOLS/node_modules/.bin:$PATH"
export DENO_NO_UPDATE_CHECK=1
