/**
 * Hosts in miniature for the boot tests: each a process holding its own mount
 * namespace inside a network namespace the test made (tests/_netns.ts), with
 * /etc an overlay, /run a tmpfs and /var what the test says (a small tmpfs for
 * the live ISO, a directory on disk for the installed OS); Ignition's files
 * written into it, units' Exec lines run in it as systemd would run them (a
 * Type=notify service's READY=1 awaited on a NOTIFY_SOCKET), and skopeo run in
 * it through its own /etc/containers.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileDigest } from "./_fixtures.ts";
import { ROOT } from "./_process.ts";
import { parseUnit, splitExec, unitEnvironment, unitValues } from "./_systemd.ts";

/** An Ignition config's files and units, as `units --format ignition` and a MachineConfig's spec.config hold them. */
export interface Ignition {
  storage?: { files: { path: string; mode: number; contents: { source: string } }[] };
  systemd?: { units: { name: string; enabled?: boolean; contents: string }[] };
}

/** A running service of a host. */
export interface Service {
  child: Deno.ChildProcess;
  log: () => string;
}

/** A booted host: the process holding its namespaces, and the services it runs. */
export interface Host {
  name: string;
  ip: string;
  pid: number;
  holder: Deno.ChildProcess;
  services: Map<string, Service>;
}

/** How a host boots. */
export interface HostSetup {
  /** A directory bound read-only at `isoAt` (the ISO's files), or none (the ISO was ejected). */
  iso?: string;
  /** Where the ISO's files appear in the host. */
  isoAt?: string;
  /** A directory on disk bound at /var (the installed OS), else a 64 MB tmpfs (the live ISO's /var is RAM). */
  varDir?: string;
  /** Bind /var/usrlocal at /usr/local, as RHCOS does (what the installed OS writes there stays in the host). */
  usrLocal?: boolean;
  /** The text of the host's /etc/hosts (how api-int resolves). */
  hosts?: string;
}

const dec = new TextDecoder();

/** Runs a command inside a host's namespaces (mount and network). */
export async function inHost(h: Host, cmd: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command("nsenter", {
    args: ["-t", String(h.pid), "-m", "-n", "--", cmd, ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

/** A path of the host's file system, seen from outside it. */
export function hostPath(h: Host, path: string): string {
  return `/proc/${h.pid}/root${path}`;
}

/** Starts a host's namespaces: network `ns`, a private mount namespace with /etc, /var and /run of its own. */
export async function startHost(name: string, ns: string, ip: string, work: string, setup: HostSetup): Promise<Host> {
  const ovl = join(work, `etc-overlay-${crypto.randomUUID().slice(0, 8)}`);
  await Deno.mkdir(ovl, { recursive: true });
  const isoAt = setup.isoAt ?? "/run/media/iso";
  const lines = [
    "set -e",
    `mount -t tmpfs -o size=16m tmpfs ${ovl}`,
    `mkdir ${ovl}/u ${ovl}/w`,
    `mount -t overlay overlay -o lowerdir=/etc,upperdir=${ovl}/u,workdir=${ovl}/w /etc`,
    // Only what the host's own boot writes configures its containers tools, not the machine's drop-ins.
    "rm -rf /etc/containers/registries.conf.d /etc/containers/certs.d",
    "mkdir -p /etc/containers/registries.conf.d /etc/containers/certs.d",
    setup.varDir ? `mount --bind ${setup.varDir} /var` : "mount -t tmpfs -o size=64m,mode=0755 tmpfs /var",
    ...(setup.usrLocal ? ["mkdir -p /var/usrlocal", "mount --bind /var/usrlocal /usr/local"] : []),
    "mount -t tmpfs -o mode=0755 tmpfs /run",
    ...(setup.iso ? [`mkdir -p ${isoAt}`, `mount --bind ${setup.iso} ${isoAt}`, `mount -o remount,bind,ro ${isoAt}`] : []),
    "echo ready",
    "exec sleep infinity",
  ].join("\n");
  const holder = new Deno.Command("ip", {
    args: ["netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", lines],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = holder.stdout.getReader();
  const first = await Promise.race([reader.read(), new Promise<undefined>((r) => setTimeout(() => r(undefined), 10_000))]);
  if (!first || !dec.decode(first.value).includes("ready")) {
    holder.kill("SIGKILL");
    throw new Error(`host ${name} did not start: ${dec.decode((await holder.output()).stderr)}`);
  }
  reader.releaseLock();
  const h: Host = { name, ip, pid: holder.pid, holder, services: new Map() };
  if (setup.hosts !== undefined) await Deno.writeTextFile(hostPath(h, "/etc/hosts"), setup.hosts);
  return h;
}

/** The bytes of a data URL: RFC 2397, base64 or percent-encoded. */
function dataUrlText(url: string): string {
  const comma = url.indexOf(",");
  const body = url.slice(comma + 1);
  if (url.slice(0, comma).endsWith(";base64")) {
    return dec.decode(Uint8Array.from(atob(body), (c) => c.charCodeAt(0)));
  }
  return decodeURIComponent(body);
}

/** Writes the Ignition config's files into the host, as Ignition does in the initramfs. */
export async function applyIgnitionFiles(h: Host, ign: Ignition): Promise<void> {
  for (const f of ign.storage?.files ?? []) {
    const path = hostPath(h, f.path);
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeTextFile(path, dataUrlText(f.contents.source));
    await Deno.chmod(path, f.mode);
  }
}

/** A unit's text from an Ignition config. */
export function unitText(ign: Ignition, name: string): string {
  const u = ign.systemd?.units.find((x) => x.name === name);
  assert.ok(u, `${name} in the Ignition config`);
  return u.contents;
}

/**
 * Runs a unit's ExecStartPre=/ExecStart= lines in the host as systemd would; a
 * Type=notify service runs on, and READY=1 is awaited unless `wait` is false
 * (then the returned promise says whether it came).
 */
export async function startUnit(
  h: Host,
  name: string,
  text: string,
  work: string,
  opts: { wait?: boolean } = {},
): Promise<Promise<boolean>> {
  const unit = parseUnit(text);
  const env = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: "/root",
    ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    ...unitEnvironment(unit),
  };
  for (const cond of unitValues(unit, "Unit", "ConditionPathExists")) {
    const exists = await Deno.stat(hostPath(h, cond.replace(/^!/, ""))).then(() => true, () => false);
    assert.equal(exists, !cond.startsWith("!"), `${h.name} ${name}: ConditionPathExists=${cond} holds`);
  }
  const type = unitValues(unit, "Service", "Type")[0] ?? "simple";
  const lines = [...unitValues(unit, "Service", "ExecStartPre"), ...unitValues(unit, "Service", "ExecStart")];
  const last = unitValues(unit, "Service", "ExecStart").length;
  for (const [i, line] of lines.entries()) {
    const [cmd, ...args] = splitExec(line.replace(/^[-@+!]+/, ""), env);
    const isMain = type === "notify" && i === lines.length - last;
    if (!isMain) {
      const r = await new Deno.Command("nsenter", {
        args: ["-t", String(h.pid), "-m", "-n", "--", cmd, ...args],
        env,
        clearEnv: true,
        cwd: "/",
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(r.code, 0, `${h.name} ${name}: ${line}: ${dec.decode(r.stderr)}`);
      continue;
    }
    const socketPath = join(work, `notify-${name}-${crypto.randomUUID().slice(0, 8)}.sock`);
    const sock = Deno.listenDatagram({ transport: "unixpacket", path: socketPath });
    const child = new Deno.Command("nsenter", {
      args: ["-t", String(h.pid), "-m", "-n", "--", cmd, ...args],
      env: { ...env, NOTIFY_SOCKET: socketPath },
      clearEnv: true,
      cwd: "/",
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let log = "";
    (async () => {
      for await (const c of child.stderr) log += dec.decode(c);
    })();
    child.stdout.cancel();
    h.services.set(name, { child, log: () => log });
    const ready = (async () => {
      try {
        const told = (async () => {
          for (;;) {
            const [msg] = await sock.receive();
            if (dec.decode(msg).split("\n").includes("READY=1")) return true;
          }
        })();
        const died = child.status.then(() => false);
        const timeout = new Promise<false>((r) => setTimeout(() => r(false), 60_000));
        return await Promise.race([told, died, timeout]);
      } finally {
        sock.close();
      }
    })();
    if (opts.wait === false) return ready;
    assert.ok(await ready, `${h.name} ${name} told READY=1: ${log}`);
  }
  return Promise.resolve(true);
}

/** Stops a host's service (SIGTERM) and says how it exited. */
export async function stopService(h: Host, name: string, signal: Deno.Signal = "SIGTERM"): Promise<number> {
  const s = h.services.get(name);
  assert.ok(s, `${h.name} runs ${name}`);
  try {
    s.child.kill(signal);
  } catch { /* already gone */ }
  const code = (await s.child.status).code;
  h.services.delete(name);
  return code;
}

/** Stops everything a host runs and its namespaces (a power-off). */
export async function stopHost(h: Host): Promise<void> {
  for (const s of h.services.values()) {
    try {
      s.child.kill("SIGKILL");
    } catch { /* already gone */ }
    await s.child.status;
  }
  h.services.clear();
  try {
    h.holder.kill("SIGKILL");
  } catch { /* already gone */ }
  await h.holder.status;
  await h.holder.stderr.cancel().catch(() => {});
}

/** Pulls `ref` with a skopeo inside the host, through the host's own /etc/containers; returns the manifest's digest. */
export async function pull(h: Host, skopeo: string, ref: string, dest: string): Promise<string> {
  const r = await inHost(h, skopeo, ["copy", "--quiet", `docker://${ref}`, `dir:${dest}`]);
  assert.equal(r.code, 0, `${h.name}: ${skopeo} copy ${ref}: ${r.err}`);
  return await fileDigest(join(dest, "manifest.json"));
}

/**
 * An isoload to put on the ISO: a script running this checkout's main.ts. As
 * `serve` it also hands itself out by digest (`--binary-file`, which a compiled
 * isoload does by default), so nodes can fetch it from their peers. With
 * `denoCopyDir`, a deno under /usr/local (the harness's) is first linked or
 * copied there: an installed node's /usr/local is its own (RHCOS's
 * /var/usrlocal) and hides the machine's.
 */
export async function isoloadWrapper(path: string, denoCopyDir?: string): Promise<void> {
  let deno = Deno.execPath();
  if (denoCopyDir && deno.startsWith("/usr/local/")) {
    const copy = join(denoCopyDir, "deno");
    await Deno.mkdir(denoCopyDir, { recursive: true });
    await Deno.link(deno, copy).catch(() => Deno.copyFile(deno, copy));
    deno = copy;
  }
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\nif [ "$1" = serve ]; then set -- "$@" --binary-file "$0"; fi\n` +
      `exec ${deno} run --allow-all --unstable-net --v8-flags=--expose-gc --quiet ${join(ROOT, "main.ts")} "$@"\n`,
  );
  await Deno.chmod(path, 0o755);
}
