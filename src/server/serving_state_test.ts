import assert from "node:assert/strict";
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

Deno.test("withdraw() leaves alone a state file another serve of the same DIR wrote since", async () => {
  const dir = await Deno.makeTempDir({ prefix: "serving-state" });
  try {
    const paths = dataDirPaths(dir);
    const first = await publishServing(paths, STATE);
    await publishServing(paths, { ...STATE, listen: "127.0.0.1:6000" });
    await first.withdraw();
    assert.equal((await readServing(paths))?.listen, "127.0.0.1:6000");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
