#!/usr/bin/env bash
# The Containerfile harness: builds isoload and its test image with podman, runs the test suite inside it against
# the shipped module graph (the compiled binary when denort can be had, else the bundle), builds the isoload image
# and checks it from the host (tests/isoload_image_test.ts). Ends with one line `tests: N passed, N failed`.
#
# Usage: bash scripts/harness.sh [--local] [--rebuild-base] [--pull-timeout SECONDS] [--no-image] [-- SUITE ARGS...]
#   --local           use bases made here from Debian packages, without trying to pull the upstream ones
#                     (also ISOLOAD_HARNESS_LOCAL=1); the default tries the upstream bases first and falls back
#   --rebuild-base    remake the local Debian bases even when they exist
#   --pull-timeout S  how long one pull of an upstream base may take before falling back (default 20)
#   --no-image        skip the isoload image and its host test
#   SUITE ARGS        passed to the suite inside (scripts/harness_suite.sh): deno test args (--filter PATTERN) and
#                     paths (tests/foo_test.ts); default the whole suite, tests/ src/
# Environment: DENORT_BIN=/path/to/denort lets `deno compile` work offline (else it needs dl.deno.land).
#   ISOLOAD_HARNESS_SUITE (default: the host's Debian codename, else bookworm) for the local bases.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

local_bases="${ISOLOAD_HARNESS_LOCAL:-0}"
rebuild_base=0
pull_timeout=20
image=1
suite_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --local) local_bases=1 ;;
    --rebuild-base) rebuild_base=1 ;;
    --pull-timeout) pull_timeout="$2"; shift ;;
    --no-image) image=0 ;;
    --) shift; suite_args=("$@"); break ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "harness: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# deno (from npm) and the host's tools for the host-side image test; mmdebstrap for the local bases.
. scripts/setup.sh
command -v podman >/dev/null || { echo "harness: podman is needed" >&2; exit 5; }

# podman here: runc, cgroupfs, ulimits below the sandbox's. The harness's own containers.conf, not the host's.
mkdir -p .harness
cat >.harness/containers.conf <<'EOF'
[containers]
default_ulimits = ["nofile=8192:8192", "nproc=8192:8192"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$ROOT/.harness/containers.conf"

t0=$SECONDS
step() { echo "harness: $*" >&2; }
seconds_since() { echo "$((SECONDS - $1)) s"; }

# The upstream bases are the Containerfile's defaults; read them from it so there is one list.
default_arg() { sed -n "s/^ARG $1=//p" Containerfile | head -1; }
DENO_IMAGE="$(default_arg DENO_IMAGE)"
TEST_BASE="$(default_arg TEST_BASE)"
RUNTIME_BASE="$(default_arg RUNTIME_BASE)"
DEBIAN_PACKAGES="$(sed -n 's/^ARG DEBIAN_PACKAGES="\(.*\)"$/\1/p' Containerfile)"

if [ "$local_bases" != 1 ]; then
  for ref in "$DENO_IMAGE" "$TEST_BASE" "$RUNTIME_BASE"; do
    podman image exists "$ref" && continue
    step "pulling $ref (at most ${pull_timeout} s)"
    if ! timeout "$pull_timeout" podman pull -q "$ref" >/dev/null 2>&1; then
      step "cannot pull $ref: using local Debian bases"
      local_bases=1
      break
    fi
  done
fi

base_kind="upstream ($DENO_IMAGE, $TEST_BASE, $RUNTIME_BASE)"
if [ "$local_bases" = 1 ]; then
  command -v mmdebstrap >/dev/null || {
    step "installing mmdebstrap"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
  }
  suite="${ISOLOAD_HARNESS_SUITE:-$( (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || true)}"
  suite="${suite:-bookworm}"
  # The same mirror apt uses here (the host's deb822 sources), else mmdebstrap's default with updates and security.
  mirror=()
  [ -f /etc/apt/sources.list.d/debian.sources ] && mirror=(/etc/apt/sources.list.d/debian.sources)
  deno_bin="$(readlink -f "$(command -v deno)")"
  # Tags name their inputs, so a changed package list or deno makes a new base and an unchanged one is reused.
  # The host's own CAs (an intercepting proxy's, say) go into the base too: the build fetches npm packages through it.
  # deno trusts the system store too (where those CAs are), not only its built-in Mozilla roots.
  base_env=(--change 'ENV DENO_TLS_CA_STORE=mozilla,system' --change 'CMD ["/bin/bash"]')
  cas=()
  for f in /usr/local/share/ca-certificates/*.crt; do [ -f "$f" ] && cas+=("$f"); done
  ca_hooks=()
  [ "${#cas[@]}" -gt 0 ] && ca_hooks=(--customize-hook="copy-in ${cas[*]} /usr/local/share/ca-certificates"
    --customize-hook='chroot "$1" update-ca-certificates --fresh >/dev/null')
  key="$( (printf '%s\n' "$suite" "$DEBIAN_PACKAGES" "$DENO_VERSION" "${base_env[@]}"; cat "${cas[@]}" </dev/null) | sha256sum | cut -c1-12)"
  LOCAL_TOOLS="localhost/isoload-base-debian:$suite-$key"
  LOCAL_RUNTIME="localhost/isoload-runtime-debian:$suite-$(printf '%s\n' "$suite" libc6 libgcc-s1 base-files | sha256sum | cut -c1-12)"
  # Leave out documentation: nothing reads it in a test image.
  nodoc=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/info/*')
  if [ "$rebuild_base" = 1 ] || ! podman image exists "$LOCAL_TOOLS"; then
    t=$SECONDS
    step "making $LOCAL_TOOLS: Debian $suite with $DEBIAN_PACKAGES, and deno $DENO_VERSION as /usr/bin/deno"
    tar="$(mktemp -d /var/tmp/isoload-harness-XXXXXX)"
    mmdebstrap --quiet --variant=apt --include="${DEBIAN_PACKAGES// /,}" "${nodoc[@]}" \
      --customize-hook="copy-in $deno_bin /usr/bin" \
      "${ca_hooks[@]}" \
      "$suite" "$tar/base.tar" "${mirror[@]}"
    podman import -q "${base_env[@]}" "$tar/base.tar" "$LOCAL_TOOLS" >/dev/null
    rm -rf "$tar"
    step "made $LOCAL_TOOLS in $(seconds_since "$t")"
  fi
  if [ "$rebuild_base" = 1 ] || ! podman image exists "$LOCAL_RUNTIME"; then
    t=$SECONDS
    step "making $LOCAL_RUNTIME: the C runtime only (libc6, libgcc-s1, base-files), no shell, no package manager"
    tar="$(mktemp -d /var/tmp/isoload-harness-XXXXXX)"
    # extract: the named packages (and what they depend on) unpacked, not installed: no dpkg, no apt in the image.
    mmdebstrap --quiet --variant=extract --include=libc6,libgcc-s1,base-files "${nodoc[@]}" \
      --customize-hook='rm -rf "$1"/var/lib/apt "$1"/var/cache/apt "$1"/etc/apt "$1"/var/lib/dpkg "$1"/etc/dpkg' \
      "$suite" "$tar/runtime.tar" "${mirror[@]}"
    podman import -q "$tar/runtime.tar" "$LOCAL_RUNTIME" >/dev/null
    rm -rf "$tar"
    step "made $LOCAL_RUNTIME in $(seconds_since "$t")"
  fi
  DENO_IMAGE="$LOCAL_TOOLS" TEST_BASE="$LOCAL_TOOLS" RUNTIME_BASE="$LOCAL_RUNTIME"
  base_kind="local Debian $suite ($LOCAL_TOOLS, $LOCAL_RUNTIME)"
fi

# deno compile needs denort: DENORT_BIN, else the network (an upstream build host); a local build has neither.
build_args=(--build-arg "DENO_IMAGE=$DENO_IMAGE" --build-arg "TEST_BASE=$TEST_BASE" --build-arg "RUNTIME_BASE=$RUNTIME_BASE")
volumes=()
if [ -n "${DENORT_BIN:-}" ]; then
  [ -f "$DENORT_BIN" ] || { echo "harness: DENORT_BIN=$DENORT_BIN is not a file" >&2; exit 5; }
  build_args+=(--build-arg COMPILE=yes --build-arg DENORT_BIN=/denort --build-arg "DENORT_SHA256=$(sha256sum <"$DENORT_BIN" | cut -d' ' -f1)")
  volumes=(-v "$(readlink -f "$DENORT_BIN"):/denort:ro")
elif [ "$local_bases" = 1 ]; then
  build_args+=(--build-arg COMPILE=no)
fi

t=$SECONDS
step "building localhost/isoload-test (base: $base_kind)"
podman build -q --layers "${build_args[@]}" "${volumes[@]}" --target test -t localhost/isoload-test -f Containerfile . >/dev/null
step "built localhost/isoload-test in $(seconds_since "$t")"
if podman run --rm --entrypoint test localhost/isoload-test -x /opt/isoload/isoload; then flavor=compiled; else flavor=bundle; fi

if [ "$image" = 1 ]; then
  t=$SECONDS
  step "building localhost/isoload (the isoload image, $flavor)"
  podman build -q --layers "${build_args[@]}" "${volumes[@]}" --build-arg "ISOLOAD_FLAVOR=$flavor" --target isoload \
    -t localhost/isoload -f Containerfile . >/dev/null
  step "built localhost/isoload in $(seconds_since "$t")"
fi

size() { podman image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'; }
step "images: localhost/isoload-test $(size localhost/isoload-test)$([ "$image" = 1 ] && echo ", localhost/isoload ($flavor) $(size localhost/isoload)")"

# The suite inside: --privileged for tmpfs mounts, network namespaces and podman in podman (vfs stores under /tmp);
# --cgroupns host for the inner runc with cgroupfs. No network: the tests use 127.0.0.1 and namespaces they make.
shared=()
for s in "${ISOLOAD_SHARED:-}" "$ROOT/../shared" /work/shared; do
  if [ -n "$s" ] && [ -d "$s/upstream" ]; then shared=(-v "$(readlink -f "$s"):/shared:ro"); break; fi
done
t=$SECONDS
log="$(mktemp)"
set +e
podman run --rm --privileged --cgroupns host --network none "${shared[@]}" localhost/isoload-test \
  bash scripts/harness_suite.sh "${suite_args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
inside="$(grep -E '^tests: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)"
tested="$(grep -E '^harness: testing ' "$log" | head -1 | sed 's/^harness: testing //' || true)"
rm -f "$log"
step "suite inside the container: $(seconds_since "$t"), rc $rc"
passed="$(sed -E 's/^tests: ([0-9]+) passed.*/\1/' <<<"${inside:-tests: 0 passed, 1 failed}")"
failed="$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"${inside:-tests: 0 passed, 1 failed}")"
[ "$rc" = 0 ] || [ "$failed" != 0 ] || failed=1

# The isoload image from the host: inspect and serve --source under podman run, skopeo pulling through it.
if [ "$image" = 1 ]; then
  t=$SECONDS
  log="$(mktemp)"
  set +e
  ISOLOAD_IMAGE=localhost/isoload ISOLOAD_IMAGE_FLAVOR="$flavor" \
    deno test --allow-all --unstable-net --frozen tests/isoload_image_test.ts 2>&1 | tee "$log"
  irc=${PIPESTATUS[0]}
  set -e
  summary="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -1 || true)"
  rm -f "$log"
  ip="$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"${summary:-| 0 passed}")"
  if=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"${summary:-| 1 failed}")
  [ "$irc" = 0 ] || [ "$if" != 0 ] || if=1
  passed=$((passed + ip)) failed=$((failed + if))
  step "isoload image test on the host: $(seconds_since "$t"), rc $irc"
fi

step "tested ${tested:-nothing} on $base_kind; total $(seconds_since "$t0")"
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
