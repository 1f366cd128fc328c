import assert from "node:assert/strict";
import { dirname } from "node:path";
import { dataDirPaths } from "../store/paths.ts";
import { publishServing, readServing } from "./serving_state.ts";

const STATE = { server: "builtin", listen: "127.0.0.1:5000", url: "http://127.0.0.1:5000/v2/", tls: false, from: "/d" } as const;

Deno.test("publishServing() writes the state while serving; withdraw() leaves it as what was served last", async () => {
  const dir = await Deno.makeTempDir({ prefix: "serving-state" });
  try {
    const paths = dataDirPaths(dir);
    assert.equal(await readServing(paths), undefined);
    const published = await publishServing(paths, STATE);
    const now = await readServing(paths);
    assert.deepEqual([now?.running, now?.pid, now?.listen, now?.server], [true, Deno.pid, "127.0.0.1:5000", "builtin"]);
    await published.withdraw();
    await published.withdraw();
    assert.equal(await Deno.stat(paths.serving).catch(() => undefined), undefined);
    const last = await readServing(paths);
    assert.deepEqual([last?.running, last?.listen], [false, "127.0.0.1:5000"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readServing() takes a state file whose process is gone, or whose pid was reused, as not serving", async () => {
  const dir = await Deno.makeTempDir({ prefix: "serving-state" });
  try {
    const paths = dataDirPaths(dir);
    await publishServing(paths, STATE);
    const mine = JSON.parse(await Deno.readTextFile(paths.serving));
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    await Deno.writeTextFile(paths.serving, JSON.stringify({ ...mine, pid: gone.pid }));
    assert.equal((await readServing(paths))?.running, false);
    await Deno.writeTextFile(paths.serving, JSON.stringify({ ...mine, pidStart: "1" }));
    assert.equal((await readServing(paths))?.running, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("update() and withdraw() leave alone a state file another serve of the same DIR wrote since", async () => {
  const dir = await Deno.makeTempDir({ prefix: "serving-state" });
  try {
    const paths = dataDirPaths(dir);
    const first = await publishServing(paths, STATE);
    await publishServing(paths, { ...STATE, listen: "127.0.0.1:6000" });
    await first.update({ copy: { state: "complete", at: "t" } });
    assert.equal((await readServing(paths))?.copy, undefined);
    await first.withdraw();
    assert.equal((await readServing(paths))?.listen, "127.0.0.1:6000");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Whether another process (flock(1), as a reader without /proc would) finds `path` locked. */
async function lockedElsewhere(path: string): Promise<boolean> {
  const r = await new Deno.Command("flock", { args: ["--nonblock", "--shared", path, "true"] }).output();
  return r.code !== 0;
}

Deno.test("update() replaces the state whole, still locked; withdraw() moves the updated one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "serving-state" });
  try {
    const paths = dataDirPaths(dir);
    const published = await publishServing(paths, { ...STATE, copy: { state: "copying", at: "t0" } });
    assert.equal(await lockedElsewhere(paths.serving), true);
    const before = await readServing(paths);
    await published.update({
      copy: { state: "stopped", at: "t1", error: "Cannot load: no room", stillServing: "from the archive in place" },
    });
    const after = await readServing(paths);
    assert.deepEqual(after?.copy, { state: "stopped", at: "t1", error: "Cannot load: no room", stillServing: "from the archive in place" });
    assert.deepEqual([after?.pid, after?.pidStart, after?.started, after?.running], [before?.pid, before?.pidStart, before?.started, true]);
    // The new file took the lock with it, and no temp file is left beside it.
    assert.equal(await lockedElsewhere(paths.serving), true);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(dirname(paths.serving)))).map((e) => e.name).filter((n) => n.includes("serving")),
      [
        "serving.json",
      ],
    );
    await Promise.all([published.update({ copy: { state: "complete", at: "t2" } }), published.withdraw()]);
    assert.equal(await Deno.stat(paths.serving).catch(() => undefined), undefined);
    const last = await readServing(paths);
    assert.deepEqual([last?.running, last?.copy], [false, { state: "complete", at: "t2" }]);
    assert.equal(await lockedElsewhere(paths.served), false, "the lock goes when the serve does");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("update() keeps the replaced file locked until withdraw(): a reader that opened it just before is not told the serve is gone", async () => {
  const dir = await Deno.makeTempDir({ prefix: "serving-state" });
  try {
    const paths = dataDirPaths(dir);
    const published = await publishServing(paths, { ...STATE, copy: { state: "copying", at: "t0" } });
    // A second name for the file as it is now: what a reader that opened it just before the rename holds.
    const opened = `${dir}/opened-before.json`;
    await Deno.link(paths.serving, opened);
    await published.update({ copy: { state: "complete", at: "t1" } });
    await published.update({ copy: { state: "complete", at: "t2" } });
    assert.equal(await lockedElsewhere(opened), true, "the replaced file is still locked while the serve runs");
    assert.equal(await lockedElsewhere(paths.serving), true);
    await published.withdraw();
    assert.equal(await lockedElsewhere(opened), false, "and let go once it stops");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
