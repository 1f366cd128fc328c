/**
 * Boot ordering with the agent ISO's real units (and NetworkManager's and
 * CRI-O's): isoload's units for every role and mode, put in one unit
 * directory with them and enabled as their [Install] sections say, give a
 * boot transaction with no ordering cycle, and every unit that pulls images
 * is ordered after isoload's registry (and, in storage mode, CRI-O after the
 * copy into containers-storage).
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { withTempDir } from "./_fixtures.ts";
import { isoload } from "./_process.ts";
import { upstream } from "./_upstream.ts";
import { exportedList, shim, UNIT_CASES } from "./_units.ts";

/** The agent ISO's units that pull images (podman pull/run, release-image-download.sh, CRI-O), or check the release image is pullable (agent-tui). */
const PULLERS = [
  "release-image.service",
  "agent-extract-tui.service",
  "agent-interactive-console.service",
  "agent.service",
  "assisted-service-pod.service",
  "assisted-service.service",
  "assisted-service-db.service",
  "agent-register-cluster.service",
  "agent-register-infraenv.service",
  "agent-ui.service",
  "apply-host-config.service",
  "start-cluster-installation.service",
  "crio.service",
];

/** Values of a [Unit]/[Install] key in a unit file's text (space-separated, every line of it). */
function values(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].flatMap((m) => m[1].trim().split(/\s+/)).filter(Boolean);
}

/** Links every unit into the .wants/ of what its WantedBy= names, as systemctl enable would. */
async function enableAll(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith(".service")) continue;
    for (const target of values(await Deno.readTextFile(join(dir, e.name)), "WantedBy")) {
      await Deno.mkdir(join(dir, `${target}.wants`), { recursive: true });
      await Deno.symlink(`../${e.name}`, join(dir, `${target}.wants`, e.name)).catch(() => {});
    }
  }
  // The console is wanted by getty@tty1, which a container's systemd may not start: want it from multi-user too.
  await Deno.mkdir(join(dir, "multi-user.target.wants"), { recursive: true });
  await Deno.symlink("../agent-interactive-console.service", join(dir, "multi-user.target.wants", "agent-interactive-console.service"))
    .catch(() => {});
}

/** `systemd-analyze verify multi-user.target` with DIR first on the unit path: the whole boot transaction. */
async function verifyBoot(dir: string): Promise<string> {
  const out = await new Deno.Command("systemd-analyze", {
    args: ["verify", "--man=no", "multi-user.target"],
    env: { SYSTEMD_UNIT_PATH: `${dir}:` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

/** "a starts before b" edges from every unit in DIR (After= and Before=). */
async function orderGraph(dir: string): Promise<Map<string, Set<string>>> {
  const next = new Map<string, Set<string>>();
  const edge = (a: string, b: string) => next.set(a, (next.get(a) ?? new Set()).add(b));
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith(".service")) continue;
    const text = await Deno.readTextFile(join(dir, e.name));
    for (const a of values(text, "After")) edge(a, e.name);
    for (const b of values(text, "Before")) edge(e.name, b);
  }
  return next;
}

function reaches(graph: Map<string, Set<string>>, from: string, to: string): boolean {
  const seen = new Set([from]);
  const todo = [from];
  while (todo.length) {
    for (const n of graph.get(todo.pop()!) ?? []) {
      if (n === to) return true;
      if (!seen.has(n)) seen.add(n), todo.push(n);
    }
  }
  return false;
}

async function rootWith(dir: string, units: string, isoloadUnits: string[]): Promise<string> {
  const root = join(dir, "root");
  await Deno.mkdir(root, { recursive: true });
  for await (const e of Deno.readDir(units)) {
    if (e.name.endsWith(".service")) await Deno.copyFile(join(units, e.name), join(root, e.name));
  }
  for (const u of isoloadUnits) await Deno.copyFile(u, join(root, basename(u)));
  await enableAll(root);
  return root;
}

Deno.test("boot order: with the agent ISO's units, no ordering cycle and every puller after isoload, for every role and mode", async () => {
  const units = upstream("upstream-units", "the boot-order check against the agent ISO's units");
  if (!units) return;
  await withTempDir("boot", async (dir) => {
    const bin = await shim(dir);
    const list = await exportedList(dir);
    // The check finds the cycle the old units made (After=network-online.target, Before= the agent console).
    const old = join(dir, "old.service");
    await Deno.writeTextFile(
      old,
      "[Unit]\nWants=network-online.target\nAfter=network-online.target\nBefore=agent-interactive-console.service\n" +
        `[Service]\nType=notify\nExecStart=${bin}\n[Install]\nWantedBy=multi-user.target\n`,
    );
    assert.match(await verifyBoot(await rootWith(join(dir, "control"), units, [old])), /ordering cycle/, "the check sees a cycle");

    for (const [name, args, written] of UNIT_CASES) {
      const out = join(dir, name);
      const r = await isoload(["units", ...args, "--mirror", "10.1.2.3:22625", "--expect", list, "--binary", bin, "--out", out]);
      assert.equal(r.code, 0, r.stderr);
      const root = await rootWith(join(dir, `${name}-root`), units, written.map((u) => join(out, u)));
      const said = await verifyBoot(root);
      assert.doesNotMatch(said, /ordering cycle|deleted to break/i, `${name}: ${said}`);
      assert.doesNotMatch(
        said.split("\n").filter((l) => /isoload-(registry|registries-conf|load)\.service/.test(l)).join("\n"),
        /\S/,
        `${name}: nothing about isoload: ${said}`,
      );
      const graph = await orderGraph(root);
      const pullers = args.includes("--before") ? ["crio.service"] : PULLERS;
      for (const p of pullers) {
        assert.ok(reaches(graph, "isoload-registry.service", p), `${name}: ${p} starts after isoload-registry.service`);
        assert.ok(reaches(graph, "isoload-registries-conf.service", p), `${name}: ${p} starts after isoload-registries-conf.service`);
      }
      if (written.includes("isoload-load.service")) {
        assert.ok(reaches(graph, "isoload-load.service", "crio.service"), `${name}: CRI-O starts after the copy`);
      }
    }
  });
});
