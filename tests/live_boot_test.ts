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
import { join } from "node:path";
import { withTempDir } from "./_fixtures.ts";
import { isoload } from "./_process.ts";
import { planRelease, writeRelease } from "../tools/release_payload.ts";
import { makeNetMesh } from "./_netns.ts";
import { upstream } from "./_upstream.ts";
import {
  applyIgnitionFiles,
  type Host,
  type Ignition,
  inHost,
  isoloadWrapper,
  pull,
  startHost,
  startUnit,
  stopHost,
  unitText,
} from "./_hosts.ts";

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
      await isoloadWrapper(bin);
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
        const h = await startHost(m.name, m.ns, m.ip, work, { iso });
        hosts.push(h);
        await applyIgnitionFiles(h, ign);
        for (const u of ["isoload-registries-conf.service", "isoload-registry.service"]) await startUnit(h, u, unitText(ign, u), work);
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
    for (const h of hosts) await stopHost(h);
    await mesh.remove();
  }
});
