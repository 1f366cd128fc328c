/**
 * A three-host live boot of the agent ISO in miniature: host0 (the rendezvous
 * host), a second control-plane host and a worker, each in its own network
 * namespace (one bridge, 10.x addresses inside the namespaces only) and its
 * own mount namespace: the ISO's files (an oc-mirror archive split into parts,
 * served through the units' default glob) bound read-only at /run/media/iso, a
 * small tmpfs as /var (the live /var is RAM), /etc an overlay. Each host gets
 * the one Ignition config `isoload units` wrote (files written as Ignition
 * would, units' Exec lines run as systemd would, Type=notify readiness
 * awaited on a NOTIFY_SOCKET). Then skopeo (Debian's, and 1.20 where the kit
 * is) pulls every image by digest and by tag on every host through the
 * registries.conf the units wrote, over TLS with only the shipped CA; the
 * second host's own registry is stopped and its pulls still succeed, through
 * host0 (once host0's stops too, the worker still pulls from its own and the
 * second host cannot); and no host's /var took more than 1 MB.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileDigest, withTempDir } from "./_fixtures.ts";
import { isoload, ROOT } from "./_process.ts";
import { planRelease, writeRelease } from "../tools/release_payload.ts";
import { makeNetMesh } from "./_netns.ts";
import { parseUnit, splitExec, unitEnvironment, unitValues } from "./_systemd.ts";
import { upstream } from "./_upstream.ts";

interface Ignition {
  storage: { files: { path: string; mode: number; contents: { source: string } }[] };
  systemd: { units: { name: string; enabled: boolean; contents: string }[] };
}

/** A booted host: the process holding its namespaces, and the services it runs. */
interface Host {
  name: string;
  ip: string;
  pid: number;
  holder: Deno.ChildProcess;
  services: Map<string, { child: Deno.ChildProcess; log: () => string }>;
}

const dec = new TextDecoder();

/** Runs a command inside a host's namespaces (mount and network). */
async function inHost(h: Host, cmd: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command("nsenter", {
    args: ["-t", String(h.pid), "-m", "-n", "--", cmd, ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

/** Starts a host's namespaces: network from the mesh, a private mount namespace with /etc, /var and /run of its own. */
async function startHost(name: string, ns: string, ip: string, iso: string, work: string): Promise<Host> {
  const ovl = join(work, "etc-overlay");
  await Deno.mkdir(ovl, { recursive: true });
  const setup = [
    "set -e",
    `mount -t tmpfs -o size=16m tmpfs ${ovl}`,
    `mkdir ${ovl}/u ${ovl}/w`,
    `mount -t overlay overlay -o lowerdir=/etc,upperdir=${ovl}/u,workdir=${ovl}/w /etc`,
    "mount -t tmpfs -o size=64m,mode=0755 tmpfs /var",
    "mount -t tmpfs -o mode=0755 tmpfs /run",
    "mkdir -p /run/media/iso",
    `mount --bind ${iso} /run/media/iso`,
    "mount -o remount,bind,ro /run/media/iso",
    "echo ready",
    "exec sleep infinity",
  ].join("\n");
  const holder = new Deno.Command("ip", {
    args: ["netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", setup],
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
  return { name, ip, pid: holder.pid, holder, services: new Map() };
}

/** Writes the Ignition config's files into the host, as Ignition does in the initramfs. */
async function applyIgnitionFiles(h: Host, ign: Ignition): Promise<void> {
  for (const f of ign.storage.files) {
    const path = `/proc/${h.pid}/root${f.path}`;
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeTextFile(path, decodeURIComponent(f.contents.source.replace(/^data:,/, "")));
    await Deno.chmod(path, f.mode);
  }
}

/** Runs a unit's ExecStartPre=/ExecStart= lines in the host as systemd would; a Type=notify service runs on, and READY=1 is awaited. */
async function startUnit(h: Host, name: string, text: string, work: string): Promise<void> {
  const unit = parseUnit(text);
  const env = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: "/root",
    ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    ...unitEnvironment(unit),
  };
  for (const cond of unitValues(unit, "Unit", "ConditionPathExists")) {
    const exists = await Deno.stat(`/proc/${h.pid}/root${cond.replace(/^!/, "")}`).then(() => true, () => false);
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
    const socketPath = join(work, `notify-${name}.sock`);
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
    try {
      const ready = (async () => {
        for (;;) {
          const [msg] = await sock.receive();
          if (dec.decode(msg).split("\n").includes("READY=1")) return true;
        }
      })();
      const died = child.status.then(() => false);
      const timeout = new Promise<false>((r) => setTimeout(() => r(false), 60_000));
      assert.ok(await Promise.race([ready, died, timeout]), `${h.name} ${name} told READY=1: ${log}`);
    } finally {
      sock.close();
    }
  }
}

/** Pulls `ref` with a skopeo inside the host, through the host's own /etc/containers; returns the manifest's digest. */
async function pull(h: Host, skopeo: string, ref: string, dest: string): Promise<string> {
  const r = await inHost(h, skopeo, ["copy", "--quiet", `docker://${ref}`, `dir:${dest}`]);
  assert.equal(r.code, 0, `${h.name}: ${skopeo} copy ${ref}: ${r.err}`);
  return await fileDigest(join(dest, "manifest.json"));
}

Deno.test("live boot: three hosts serve their own ISO in place over TLS, pull every image, and fail over to host0", async () => {
  const skopeos = ["skopeo", upstream("bin/skopeo-1.20", "pulls with skopeo 1.20 in the live-boot test")].filter((s): s is string => !!s);
  const mesh = await makeNetMesh(["host0", "master1", "worker"]);
  const hosts: Host[] = [];
  try {
    await withTempDir("live", async (dir) => {
      // What the ISO carries: an oc-mirror archive split into parts (archiveSize), in place under /run/media/iso/images.
      const iso = join(dir, "iso");
      await Deno.mkdir(join(iso, "images"), { recursive: true });
      const payload = await writeRelease(planRelease({ totalBytes: 6_000_000, images: 8, seed: 1212 }), {
        out: join(iso, "images", "mirror.tar"),
        format: "oc-mirror",
        archiveBytes: 2_000_000,
      });
      assert.ok(payload.paths.length >= 3, `a multi-part archive: ${payload.paths.join(", ")}`);
      // The build machine: the cluster's TLS, the image list, one Ignition for every host.
      const rendezvous = mesh.hosts[0].ip;
      const tls = join(dir, "tls");
      const made = await isoload(["tls", "--out", tls, "--rendezvous", rendezvous, "--cluster", "ocp", "--base-domain", "example.com"]);
      assert.equal(made.code, 0, made.stderr);
      const list = join(dir, "images.json");
      const inspected = await isoload(["inspect", "--json", join(iso, "images", "mirror_*.tar")]);
      assert.equal(inspected.code, 0, inspected.stderr);
      await Deno.writeTextFile(list, inspected.stdout);
      const bin = join(dir, "bin", "isoload");
      await Deno.mkdir(dirname(bin));
      await Deno.writeTextFile(
        bin,
        `#!/bin/sh\nexec ${Deno.execPath()} run --allow-all --unstable-net --quiet ${join(ROOT, "main.ts")} "$@"\n`,
      );
      await Deno.chmod(bin, 0o755);
      const units = await isoload([
        "units",
        "--mirror",
        `${rendezvous}:22625`,
        "--tls-dir",
        tls,
        "--expect",
        list,
        "--binary",
        bin,
        "--out",
        join(dir, "units"),
        "--format",
        "ignition",
      ]);
      assert.equal(units.code, 0, units.stderr);
      const ign: Ignition = JSON.parse(await Deno.readTextFile(join(dir, "units", "isoload.ign")));

      // Boot: every host the same ISO and the same Ignition; units in the order their Before= gives.
      for (const m of mesh.hosts) {
        const work = join(dir, "hosts", m.name);
        await Deno.mkdir(work, { recursive: true });
        const h = await startHost(m.name, m.ns, m.ip, iso, work);
        hosts.push(h);
        await applyIgnitionFiles(h, ign);
        for (const u of ["isoload-registries-conf.service", "isoload-registry.service"]) {
          await startUnit(h, u, ign.systemd.units.find((x) => x.name === u)!.contents, work);
        }
        const conf = await Deno.readTextFile(`/proc/${h.pid}/root/etc/containers/registries.conf.d/99-isoload.conf`);
        assert.doesNotMatch(conf, /insecure/, `${m.name}: TLS, nothing insecure`);
        assert.match(
          conf,
          new RegExp(`location = "localhost:22625/[^"]+"[\\s\\S]*?location = "${rendezvous.replaceAll(".", "\\.")}:22625/`),
        );
      }

      const pullEverything = async (h: Host, tag: string) => {
        for (const [s, skopeo] of skopeos.entries()) {
          const out = join(dir, "pulls", `${h.name}-${tag}-${s}`);
          await Deno.mkdir(out, { recursive: true });
          for (const [i, img] of payload.images.entries()) {
            assert.equal(
              await pull(h, skopeo, `${img.source}@${img.digest}`, join(out, `d${i}`)),
              img.digest,
              `${h.name} ${skopeo} ${img.name}`,
            );
            if (!img.name.includes("@")) {
              assert.equal(await pull(h, skopeo, img.name, join(out, `t${i}`)), img.digest, `${h.name} ${skopeo} ${img.name} by tag`);
            }
          }
        }
      };
      for (const h of hosts) await pullEverything(h, "own");

      // The second control-plane host's registry fails: its pulls go on, through host0.
      const master = hosts[1];
      const own = master.services.get("isoload-registry.service")!;
      own.child.kill("SIGTERM");
      assert.equal((await own.child.status).code, 0, own.log());
      const probe = await inHost(master, "sh", ["-c", "exec 3<>/dev/tcp/127.0.0.1/22625"]);
      assert.notEqual(probe.code, 0, "the master's own registry is down");
      await pullEverything(master, "failover");

      // host0's registry fails too: the worker still pulls from its own, and the master, with neither, cannot:
      // so its pulls above did go through host0.
      const h0 = hosts[0].services.get("isoload-registry.service")!;
      h0.child.kill("SIGTERM");
      assert.equal((await h0.child.status).code, 0, h0.log());
      await pullEverything(hosts[2], "alone");
      const img = payload.images[1];
      const none = await inHost(master, "skopeo", ["copy", "--quiet", `docker://${img.source}@${img.digest}`, `dir:${join(dir, "none")}`]);
      assert.notEqual(none.code, 0, "with both registries down the master cannot pull");
      assert.match(none.err, /connection refused|dial tcp|lookup quay\.io/, none.err);

      // Nothing of the archive went into any host's /var (RAM on the live ISO).
      for (const h of hosts) {
        const df = await inHost(h, "df", ["-k", "--output=used", "/var"]);
        const usedKb = Number(df.out.trim().split("\n").at(-1));
        assert.ok(usedKb <= 1024, `${h.name}: /var holds ${usedKb} KiB (at most 1 MB)`);
      }
    });
  } finally {
    for (const h of hosts) {
      for (const s of h.services.values()) {
        try {
          s.child.kill("SIGKILL");
        } catch { /* already gone */ }
        await s.child.status;
      }
      h.holder.kill("SIGKILL");
      await h.holder.status;
      await h.holder.stderr.cancel().catch(() => {});
    }
    await mesh.remove();
  }
});
