/**
 * A four-node agent-based install in miniature, from the live ISO to the
 * installed cluster: host0 (the rendezvous host), two more control-plane nodes
 * and a worker, each in its own network namespace (one bridge, 10.x addresses
 * inside the namespaces only) and mount namespace (tests/_hosts.ts); api-int
 * resolves, through each node's /etc/hosts, to master1's address. The ISO
 * carries a multi-part oc-mirror archive and the isoload binary (a script
 * running this checkout); the build machine makes the cluster's TLS, the live
 * Ignition (`units`) and the installed cluster's manifests (`machine-configs`).
 *
 *  1. Live boot: every node serves its own ISO in place (the live units).
 *  2. master1 and master2 reboot into the installed OS (a disk-backed /var,
 *     /usr/local on it), the worker too: master2 keeps its ISO, master1 lost
 *     it. Each master runs its MachineConfig's units (their ExecStart lines):
 *     master2 serves its ISO in place and keeps a copy on disk; master1 gets the
 *     binary from host0's registry and replicates the images from it. The
 *     worker has no registry: it pulls through api-int.
 *  3. host0 reboots last, its ISO gone: it gets the binary and the images from
 *     the other two; it pulls through api-int while its own registry starts.
 *  4. Meanwhile master2 is killed mid-replication (its link slowed so that
 *     host0 is caught copying from it): host0's copy finishes from master1;
 *     master2 comes back from its disk; `verify` passes on every node that
 *     keeps the images.
 *
 * After every phase skopeo (Debian's, and 1.20 where the kit is) pulls every
 * image by digest and by tag on every node through that node's registries.conf:
 * the live one isoload wrote, and for the installed OS `mco-render` of the
 * mirror sets (isoload's own rendering of the same mirrors when the kit is
 * absent), over TLS with only the cluster's CA.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { withTempDir } from "./_fixtures.ts";
import { isoload, tool } from "./_process.ts";
import { planRelease, type ReleasePayload, writeRelease } from "../tools/release_payload.ts";
import { makeNetMesh } from "./_netns.ts";
import { upstream } from "./_upstream.ts";
import {
  applyIgnitionFiles,
  type Host,
  hostPath,
  type Ignition,
  inHost,
  isoloadWrapper,
  pull,
  startHost,
  startUnit,
  stopHost,
  stopService,
  unitText,
} from "./_hosts.ts";

const CLUSTER = "ocp";
const DOMAIN = "example.com";
const API_INT = `api-int.${CLUSTER}.${DOMAIN}`;
const ISOLOAD = "/usr/local/bin/isoload";
const DATA = "/var/lib/isoload";

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `isoload status --json` run on the node, its registry part. */
async function statusOn(h: Host) {
  const r = await inHost(h, ISOLOAD, ["status", "--data-dir", DATA, "--json"]);
  assert.equal(r.code, 0, `${h.name}: status: ${r.err}`);
  return JSON.parse(r.out).registry;
}

/** Runs a shell command on a node's network interface (`$dev`: its one link besides lo) in its namespace. */
async function onLink(ns: string, script: string): Promise<string> {
  return (await tool("ip", ["netns", "exec", ns, "sh", "-c", `dev=$(ls /sys/class/net | grep -vx lo); ${script}`])).stdout;
}

/** Bytes a node's interface sent through its (slowing) queue. */
async function sentBytes(ns: string): Promise<number> {
  return Number(/Sent (\d+) bytes/.exec(await onLink(ns, "tc -s qdisc show dev $dev"))?.[1] ?? 0);
}

Deno.test("install: four nodes from live ISO to installed cluster; every node pulls every image at every phase; a peer killed mid-replication", async () => {
  const skopeos = ["skopeo", upstream("bin/skopeo-1.20", "pulls with skopeo 1.20 in the install test")].filter((s): s is string => !!s);
  const mcoRender = upstream("bin/mco-render", "mco-render in the install test (isoload registries-conf renders the same mirrors)");
  const mesh = await makeNetMesh(["host0", "master1", "master2", "worker"]);
  const hosts = new Map<string, Host>();
  const stopAll = async () => {
    for (const h of hosts.values()) await stopHost(h);
  };
  try {
    await withTempDir("install", async (dir) => {
      const [h0, m1, m2, w] = mesh.hosts;
      const etcHosts = `127.0.0.1 localhost\n::1 localhost\n${m1.ip} ${API_INT}\n`;
      // The ISO: the archive split into parts (oc-mirror's archiveSize), and isoload beside it.
      const iso = join(dir, "iso");
      await Deno.mkdir(join(iso, "images"), { recursive: true });
      const payload: ReleasePayload = await writeRelease(planRelease({ totalBytes: 8_000_000, images: 4, seed: 1313 }), {
        out: join(iso, "images", "mirror.tar"),
        format: "oc-mirror",
        archiveBytes: 3_000_000,
      });
      assert.ok(payload.paths.length >= 2, `a multi-part archive: ${payload.paths.join(", ")}`);
      const isoBinary = join(iso, "images", "isoload");
      await isoloadWrapper(isoBinary, join(dir, "deno"));

      // The build machine: TLS for every node's registry, the live Ignition, the installed cluster's manifests.
      const tls = join(dir, "tls");
      const ips = mesh.hosts.slice(0, 3).flatMap((h) => ["--ip", h.ip]);
      const made = await isoload(["tls", "--out", tls, "--rendezvous", h0.ip, "--cluster", CLUSTER, "--base-domain", DOMAIN, ...ips]);
      assert.equal(made.code, 0, made.stderr);
      const list = join(dir, "images.json");
      const inspected = await isoload(["inspect", "--json", join(iso, "images", "mirror_*.tar")]);
      assert.equal(inspected.code, 0, inspected.stderr);
      await Deno.writeTextFile(list, inspected.stdout);
      const units = await isoload([
        ...["units", "--mirror", `${h0.ip}:22625`, "--tls-dir", tls, "--expect", list],
        ...["--binary", "/run/media/iso/images/isoload", "--out", join(dir, "units"), "--format", "ignition"],
      ]);
      assert.equal(units.code, 0, units.stderr);
      const live: Ignition = JSON.parse(await Deno.readTextFile(join(dir, "units", "isoload.ign")));
      const manifests = join(dir, "openshift");
      const mc = await isoload([
        ...["machine-configs", "--out", manifests, "--tls-dir", tls, "--cluster", CLUSTER, "--base-domain", DOMAIN],
        ...["--source", join(iso, "images", "mirror_*.tar"), "--binary", isoBinary, "--rendezvous", h0.ip],
        ...["--peer", m1.ip, "--peer", m2.ip],
      ]);
      assert.equal(mc.code, 0, mc.stderr);
      const doc = async (name: string) => parse(await Deno.readTextFile(join(manifests, name))) as Record<string, any>;
      const masterIgn: Ignition = (await doc("99_openshift-machineconfig_99-master-isoload.yaml")).spec.config;
      const workerIgn: Ignition = (await doc("99_openshift-machineconfig_99-worker-isoload.yaml")).spec.config;
      const mirrorSets = [await doc("99_isoload-image-digest-mirror-set.yaml"), await doc("99_isoload-image-tag-mirror-set.yaml")];

      // The installed OS's registries.conf, as the MCO renders the mirror sets (localhost:22625, then api-int).
      const installedConf = join(dir, "installed-registries.conf");
      if (mcoRender) {
        const docs = join(dir, "mirror-sets.json");
        await Deno.writeTextFile(docs, JSON.stringify(mirrorSets));
        const template = join(dir, "template.toml");
        await Deno.writeTextFile(template, "unqualified-search-registries = ['registry.access.redhat.com']\n");
        await Deno.writeTextFile(installedConf, (await tool(mcoRender, [template, docs])).stdout);
      } else {
        const r = await isoload([
          ...["registries-conf", "--mirror", "localhost:22625", "--mirror", `${API_INT}:22625`, "--expect", list],
          ...["--out", installedConf, "--certs-dir", join(dir, "unused-certs"), "--tls-dir", tls],
        ]);
        assert.equal(r.code, 0, r.stderr);
      }
      const conf = await Deno.readTextFile(installedConf);
      assert.ok(conf.indexOf(`"localhost:22625/`) < conf.indexOf(`"${API_INT}:22625/`), conf);

      let round = 0;
      const pullEverything = async (h: Host, phase: string) => {
        for (const [s, skopeo] of skopeos.entries()) {
          const out = join(dir, "pulls", `${phase}-${h.name}-${s}-${round++}`);
          await Deno.mkdir(out, { recursive: true });
          for (const [i, img] of payload.images.entries()) {
            assert.equal(
              await pull(h, skopeo, `${img.source}@${img.digest}`, join(out, `d${i}`)),
              img.digest,
              `${phase}: ${h.name} ${img.name}`,
            );
            if (!img.name.includes("@")) {
              assert.equal(await pull(h, skopeo, img.name, join(out, `t${i}`)), img.digest, `${phase}: ${h.name} ${img.name} by tag`);
            }
          }
        }
      };
      const pullEverywhere = async (phase: string) => {
        for (const h of hosts.values()) await pullEverything(h, phase);
      };

      /** Boots a node into the live ISO: the live units, serving its ISO in place. */
      const bootLive = async (m: typeof h0) => {
        const work = join(dir, "hosts", m.name);
        await Deno.mkdir(work, { recursive: true });
        const h = await startHost(m.name, m.ns, m.ip, work, { iso, hosts: etcHosts });
        hosts.set(m.name, h);
        await applyIgnitionFiles(h, live);
        for (const u of ["isoload-registries-conf.service", "isoload-registry.service"]) await startUnit(h, u, unitText(live, u), work);
        return h;
      };

      /** Reboots a node into the installed OS: a disk /var, the MachineConfig's files; a master then runs its units. */
      const bootInstalled = async (m: typeof h0, role: "master" | "worker", keepsIso: boolean, wait = true) => {
        const old = hosts.get(m.name);
        if (old) await stopHost(old);
        const work = join(dir, "hosts", m.name);
        const disk = join(work, "disk-var");
        await Deno.mkdir(disk, { recursive: true });
        const h = await startHost(m.name, m.ns, m.ip, work, {
          iso: keepsIso ? iso : undefined,
          isoAt: "/run/isoload/iso",
          varDir: disk,
          usrLocal: true,
          hosts: etcHosts,
        });
        hosts.set(m.name, h);
        await applyIgnitionFiles(h, role === "master" ? masterIgn : workerIgn);
        await Deno.writeTextFile(hostPath(h, "/etc/containers/registries.conf"), conf);
        if (role === "worker") return { h, ready: Promise.resolve(true) };
        await startUnit(h, "isoload-binary.service", unitText(masterIgn, "isoload-binary.service"), work);
        const ready = await startUnit(h, "isoload-registry.service", unitText(masterIgn, "isoload-registry.service"), work, {
          wait,
        });
        return { h, ready };
      };

      // 1. Live boot on all four.
      for (const m of mesh.hosts) await bootLive(m);
      await pullEverywhere("live");

      // 2. master1 (ISO gone) and master2 (ISO attached) reboot into the installed OS, and the worker.
      for (const m of [m1, m2, w]) {
        assert.equal(await stopService(hosts.get(m.name)!, "isoload-registry.service"), 0, `${m.name}'s live registry stops`);
      }
      const master1 = (await bootInstalled(m1, "master", false)).h;
      const master2 = (await bootInstalled(m2, "master", true)).h;
      await bootInstalled(w, "worker", false);
      const log1 = master1.services.get("isoload-registry.service")!.log;
      const log2 = master2.services.get("isoload-registry.service")!.log;
      assert.match(log1(), /no ISO: serving from \/var\/lib\/isoload/);
      assert.match(log1(), /skipping https:\/\/api-int\.ocp\.example\.com:22625: it is this node/);
      assert.match(log2(), /ISO attached: serving \/run\/isoload\/iso\/images\/mirror_\*\.tar in place while keeping it/);
      for (const h of [master1, master2]) {
        assert.equal(await Deno.readTextFile(hostPath(h, ISOLOAD)), await Deno.readTextFile(isoBinary), `${h.name}: isoload installed`);
      }
      await pullEverywhere("installed masters");
      for (const h of [master1, master2]) await until(`${h.name}'s copy on its disk`, async () => (await statusOn(h)).complete === true);
      const s1 = await statusOn(master1);
      assert.equal(s1.serving.origin.dataDir, DATA);
      assert.ok(s1.serving.origin.peers.includes(`https://${h0.ip}:22625`), JSON.stringify(s1.serving.origin));
      const s2 = await statusOn(master2);
      assert.match(s2.serving.origin.inPlace.join(" "), /^\/run\/isoload\/iso\/images\/mirror_0+1\.tar/);
      for (const s of [s1, s2]) assert.equal(s.local.imagesComplete, payload.images.length);
      const text2 = await inHost(master2, ISOLOAD, ["status", "--data-dir", DATA]);
      assert.match(text2.out, /^Images from: +this node's disk \(\/var\/lib\/isoload\), then the archive in place/m);

      // 3 and 4. host0 reboots last with no ISO; master2's link is slowed so host0 is caught copying from it, and killed.
      assert.equal(await stopService(hosts.get(h0.name)!, "isoload-registry.service"), 0, "host0's live registry stops");
      await onLink(m2.ns, "tc qdisc add dev $dev root tbf rate 4mbit burst 32kbit latency 2s");
      const before = await sentBytes(m2.ns);
      const { h: host0, ready } = await bootInstalled(h0, "master", false, false);
      const log0 = () => host0.services.get("isoload-registry.service")?.log() ?? "";
      // While host0's own registry starts (and fills), its pulls go on: to the next mirror, api-int, until it answers.
      const startingPulls = pullEverything(host0, "host0 starting");
      await until("host0 copying from master2", async () => (await sentBytes(m2.ns)) - before > 300_000);
      const partial = await statusOn(host0);
      assert.equal(partial.complete, false, "host0 is caught mid-copy");
      assert.equal((await stopService(master2, "isoload-registry.service", "SIGKILL")) !== 0, true, "master2 killed");
      assert.ok(await ready, `host0's registry told READY=1: ${log0()}`);
      await startingPulls;
      await until("host0's copy, finished from master1", async () => (await statusOn(host0)).complete === true);
      assert.match(log0(), /skipping https:\/\/[0-9.]+:22625: it is this node/);
      await onLink(m2.ns, "tc qdisc del dev $dev root");
      // master2 comes back (its units again): binary and images already on its disk.
      await startUnit(master2, "isoload-binary.service", unitText(masterIgn, "isoload-binary.service"), join(dir, "hosts", m2.name));
      await startUnit(master2, "isoload-registry.service", unitText(masterIgn, "isoload-registry.service"), join(dir, "hosts", m2.name));
      assert.match(master2.services.get("isoload-registry.service")!.log(), /is complete: serving it/);
      const s0 = await statusOn(host0);
      assert.equal(s0.serving.origin.peers.includes(`https://${h0.ip}:22625`), false, "host0 is not its own peer");
      assert.equal(s0.local.imagesComplete, payload.images.length);
      await pullEverywhere("installed cluster");
      for (const h of [host0, master1, master2]) {
        const v = await inHost(h, ISOLOAD, ["verify", "--data-dir", DATA]);
        assert.equal(v.code, 0, `${h.name}: verify: ${v.err}`);
      }
    });
  } finally {
    await stopAll();
    await mesh.remove();
  }
});
