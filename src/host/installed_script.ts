/**
 * The shell script a control-plane node of the installed cluster runs at
 * boot, before isoload itself is on its disk: `isoload-boot binary` puts the
 * isoload binary in place (from the agent ISO when it is still attached, else
 * from a peer's registry), checked against the sha256 the MachineConfig was
 * generated with; `isoload-boot serve` execs `isoload serve` on the node's
 * disk, with the attached ISO (served in place and copied to the disk in the
 * background) or else the peers (copied from as asked and in the background)
 * behind it. Pure renderer: the same options give the same bytes.
 *
 * It uses only what RHCOS has: bash, coreutils (sha256sum, mktemp), curl,
 * util-linux (blkid, mount, mountpoint), iproute (ip), glibc's getent, awk.
 */
import { binaryBlobPath } from "../server/binary.ts";

/** Where the installed OS keeps isoload's things (RHCOS: /usr is read-only, /usr/local is /var/usrlocal). */
export const INSTALLED_PATHS = {
  /** The isoload binary the script installs. */
  binary: "/usr/local/bin/isoload",
  /** The script itself. */
  script: "/usr/local/bin/isoload-boot",
  /** The cluster's CA, server certificate and key (the names `isoload tls --out` writes). */
  tlsDir: "/etc/isoload/tls",
  /** Where the ISO is mounted read-only when found. */
  isoMount: "/run/isoload/iso",
  /** The node's copy of the images (on the installed disk). */
  dataDir: "/var/lib/isoload",
} as const;

/** Options of the boot script. */
export interface BootScriptOptions {
  /** sha256 (64 hex) of the isoload binary to install. */
  binarySha256: string;
  /** Where to install it. */
  binaryPath: string;
  /** The ISO's volume label, a shell pattern (the agent ISO keeps the RHCOS live ISO's `rhcos-<version>`). */
  isoLabel: string;
  /** Where the ISO is mounted (read-only). */
  isoMount: string;
  /** The binary's path inside the ISO. */
  isoBinary: string;
  /** The image archive's path inside the ISO: a path or a glob of its parts. */
  isoArchive: string;
  /** Peers' registries (`https://HOST:PORT`), asked in order. */
  peers: string[];
  /** The TLS directory (ca.crt, server.crt, server.key). */
  tlsDir: string;
  /** The node's data directory. */
  dataDir: string;
  /** Address the registry listens on. */
  listen: string;
}

/** Quotes a string for bash, whatever it holds. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The script's text. */
export function renderBootScript(o: BootScriptOptions): string {
  if (!/^[0-9a-f]{64}$/.test(o.binarySha256)) throw new TypeError(`Cannot render the boot script: ${o.binarySha256} is not a sha256`);
  const q = shellQuote;
  return `#!/bin/bash
# Written by isoload machine-configs: regenerate rather than edit.
# isoload-boot binary: install the isoload binary at $binary, checked by sha256,
#   from the agent ISO when attached, else from a peer's registry. Idempotent.
# isoload-boot serve: serve the images at $listen from $data_dir; what it lacks
#   comes from the ISO in place when attached (and is copied into $data_dir in
#   the background), else from the peers (and is kept there too).
set -euo pipefail

want=${o.binarySha256}
binary=${q(o.binaryPath)}
iso_label=${q(o.isoLabel)}
iso_mount=${q(o.isoMount)}
iso_binary=${q(o.isoBinary)}
iso_archive=${q(o.isoArchive)}
tls_dir=${q(o.tlsDir)}
data_dir=${q(o.dataDir)}
listen=${q(o.listen)}
# Peers may still be starting: this many rounds over the sources, this many seconds apart.
rounds=10
pause=10
peers=(${o.peers.map(q).join(" ")})

say() { echo "isoload-boot: $*" >&2; }

# True when $1 is a regular file whose sha256 is the one wanted.
matches() { [ -f "$1" ] && echo "$want  $1" | sha256sum --check --status -; }

# True when the first path of the archive (a glob) inside the mounted ISO can be read.
iso_has() {
  local first
  first=$(compgen -G "$iso_mount/$1" | head -n 1) || return 1
  [ -n "$first" ] && head -c 1 "$first" >/dev/null 2>&1
}

# Mounts the ISO (by its volume label, read-only) unless it is there already;
# true when the mount point holds $1 (a path or glob inside the ISO).
mount_iso() {
  iso_has "$1" && return 0
  # A stale mount (the ISO was ejected) reads as I/O errors: drop it.
  if mountpoint -q "$iso_mount"; then umount -l "$iso_mount" || true; fi
  local dev label
  for dev in $(blkid -c /dev/null -o device -t TYPE=iso9660 2>/dev/null || true); do
    label=$(blkid -c /dev/null -o value -s LABEL "$dev" 2>/dev/null) || continue
    # shellcheck disable=SC2254 # the label is a pattern on purpose
    case "$label" in $iso_label) ;; *) continue ;; esac
    mkdir -p "$iso_mount"
    if mount -o ro "$dev" "$iso_mount"; then
      iso_has "$1" && return 0
      umount "$iso_mount" || true
    fi
  done
  return 1
}

# True when the peer URL $1 names this node (one of its global addresses): a node never asks itself,
# which would at best fail and at worst have its registry fetch from itself. Loopback is not "self" here.
is_self() {
  local host=\${1#*://} addr
  host=\${host%:*}
  host=\${host#[}
  host=\${host%]}
  for addr in $(getent ahosts "$host" 2>/dev/null | awk '{print $1}' | sort -u); do
    if ip -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | grep -qxF "$addr"; then return 0; fi
  done
  return 1
}

# The peers that are not this node, one a line.
other_peers() {
  local peer
  for peer in "\${peers[@]}"; do
    if is_self "$peer"; then say "skipping $peer: it is this node"; else echo "$peer"; fi
  done
}

# Moves the candidate $tmp into place when it matches; $1 says where it came from.
take() {
  if matches "$tmp"; then
    chmod 0755 "$tmp"
    sync "$tmp"
    mv -f "$tmp" "$binary"
    say "installed $binary (sha256:$want) from $1"
    exit 0
  fi
  say "$1 gave a file whose sha256 is not $want: ignored"
  rm -f "$tmp"
}

get_binary() {
  if matches "$binary"; then
    say "$binary is already sha256:$want"
    exit 0
  fi
  mkdir -p "$(dirname "$binary")"
  tmp=$(mktemp "$(dirname "$binary")/.isoload.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  local round peer others
  for ((round = 1; round <= rounds; round++)); do
    if mount_iso "$iso_binary" && cp "$iso_mount/$iso_binary" "$tmp"; then take "the ISO ($iso_mount/$iso_binary)"; fi
    # Asked each round: name resolution and this node's addresses may change while it boots.
    mapfile -t others < <(other_peers)
    for peer in "\${others[@]}"; do
      if curl --cacert "$tls_dir/ca.crt" -fsS --connect-timeout 5 --max-time 600 -o "$tmp" "$peer${binaryBlobPath("$want")}"; then
        take "$peer"
      else
        say "$peer did not give the binary"
      fi
    done
    if ((round < rounds)); then
      say "round $round: no source gave sha256:$want; trying again in $pause s"
      sleep "$pause"
    fi
  done
  say "cannot install $binary: neither the ISO (label $iso_label) nor any peer (\${peers[*]:-none}) gave sha256:$want"
  exit 1
}

serve() {
  local args=(--data-dir "$data_dir" --tls-dir "$tls_dir" --listen "$listen") peer others
  mkdir -p "$data_dir"
  mapfile -t others < <(other_peers)
  for peer in "\${others[@]}"; do args+=(--peer "$peer"); done
  if mount_iso "$iso_archive"; then
    # isoload serves the ISO in place at once and keeps a copy in $data_dir, so the images outlive the ISO;
    # a complete $data_dir is served alone.
    say "ISO attached: serving $iso_mount/$iso_archive in place while keeping it in $data_dir"
    exec "$binary" serve --source "$iso_mount/$iso_archive" --persist "\${args[@]}"
  fi
  say "no ISO: serving from $data_dir, with what it lacks from \${others[*]:-no peer}"
  exec "$binary" serve "\${args[@]}"
}

case "\${1:-}" in
binary) get_binary ;;
serve) serve ;;
*)
  echo "usage: $0 binary|serve" >&2
  exit 2
  ;;
esac
`;
}
