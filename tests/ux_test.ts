/**
 * What a person meets first: help for every command, usage errors, progress
 * fit for journald (and JSON for machines), status and verify, and the
 * compile task's shape.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkTree, sampleFixture, tinyBlobsArchive, withTempDir } from "./_fixtures.ts";
import { freePort, isoload, ROOT, serve, spawnIsoload } from "./_process.ts";

const COMMANDS = ["inspect", "load", "serve", "registries-conf", "wait", "tls", "units", "status", "verify", "mirror-config"];

Deno.test("help: isoload --help lists every command; each command's --help explains its options and ends with an example", async () => {
  const top = await isoload(["--help"]);
  assert.equal(top.code, 0);
  for (const c of COMMANDS) assert.match(top.stdout, new RegExp(`^  ${c} `, "m"), `top help lists ${c}`);
  assert.match(top.stdout, /Exit codes: 0 ok/);
  for (const c of COMMANDS) {
    const h = await isoload([c, "--help"]);
    assert.equal(h.code, 0, c);
    assert.match(h.stdout, /^Usage: isoload /m, c);
    assert.match(h.stdout, /^Options:\n( {2}--\S+.*\n)+/m, c);
    assert.match(
      h.stdout,
      new RegExp(`Examples:\\n( {2}isoload ${c} .*\\n)+( {2}isoload .*\\n)*\\s*$`),
      `${c} --help ends with an example`,
    );
    assert.match(h.stdout, /--log-format FORMAT/, c);
  }
});

Deno.test("usage errors exit 2 with a one-line cause and the help hint", async () => {
  for (const c of COMMANDS) {
    const r = await isoload([c, "--no-such-flag"]);
    assert.equal(r.code, 2, `${c}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assert.match(lines[0], new RegExp(`^isoload ${c}: `), c);
    assert.equal(lines.at(-1), `Run 'isoload ${c} --help' for details.`);
  }
  const unknown = await isoload(["frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  assert.equal((await isoload([])).code, 2, "no command at all");
});

Deno.test("progress: off a TTY, plain lines with percent, rate and ETA and no escape codes; --log-format json, one object a line", async () => {
  await withTempDir("progress", async (dir) => {
    const tar = join(dir, "tiny.tar");
    await tinyBlobsArchive(tar, 3000);
    // Progress from the first entry, so the lines are there however fast this disk loads.
    const env = { ISOLOAD_PROGRESS_AFTER_MS: "0" };
    const text = await isoload(["load", tar, "--data-dir", join(dir, "a"), "--no-registries-conf"], { env });
    assert.equal(text.code, 0, text.stderr);
    assert.ok(!text.stderr.includes("\u001b") && !text.stderr.includes("\r"), "no escape codes or carriage returns");
    const lines = text.stderr.split("\n").filter((l) => l.startsWith("load: "));
    assert.ok(lines.length >= 1, `progress lines: ${text.stderr}`);
    for (const l of lines) assert.match(l, /^load: \d+% [\d.]+ [kMGT]?B\/[\d.]+ [kMGT]?B [\d.]+ [kMGT]?B\/s( ETA \S+)?( \S+)?$/, l);

    const json = await isoload(["load", tar, "--data-dir", join(dir, "b"), "--no-registries-conf", "--log-format", "json"], { env });
    assert.equal(json.code, 0, json.stderr);
    const records = json.stderr.trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(records.every((r) => typeof r.time === "string" && r.command === "load" && typeof r.msg === "string"));
    const progress = records.filter((r) => r.level === "progress");
    assert.ok(progress.length >= 1 && progress.every((p) => p.progress.total > 0 && p.progress.done <= p.progress.total));
    assert.match(records.at(-1).msg, /^Loaded 4 images/);

    const bad = await isoload(["load", join(dir, "missing.tar"), "--data-dir", join(dir, "c"), "--log-format", "json"]);
    assert.equal(bad.code, 3);
    assert.deepEqual(Object.keys(JSON.parse(bad.stderr.trim())).sort(), ["command", "exitCode", "level", "msg", "time"]);
  });
});

Deno.test("status and verify: a good DIR is all good and served; one corrupted blob is found and named", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("status", async (dir) => {
    const data = join(dir, "data");
    const conf = join(dir, "r.conf");
    const port = freePort();
    assert.equal((await isoload(["load", tar, "--data-dir", data, "--mirror", `127.0.0.1:${port}`, "--registries-conf", conf])).code, 0);
    const good = await isoload(["verify", "--data-dir", data]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stderr, /Verified .*: 14 blobs \(.*\) and 22 links in .*: all good/);

    const served = await serve(["--data-dir", data, "--listen", `127.0.0.1:${port}`, "--registry-command", "/usr/bin/docker-registry"]);
    try {
      const st = JSON.parse((await isoload(["status", "--data-dir", data, "--json"])).stdout);
      assert.equal(st.registry.complete, true);
      assert.equal(st.registry.images, 4);
      assert.equal(st.registry.lastVerify.ok, true);
      assert.equal(st.registry.serving.answering, true);
      assert.equal(st.registry.serving.listen, `127.0.0.1:${port}`);
      assert.equal(st.registry.files.registriesConf, conf);
      const text = await isoload(["status", "--data-dir", data]);
      assert.match(text.stdout, new RegExp(`Registry: +serving at http://127\\.0\\.0\\.1:${port}/v2/`));
      assert.match(text.stdout, new RegExp(`Wrote: +${conf}`));
    } finally {
      await served.stop();
    }

    // Corrupt one layer in place, as a bad disk would.
    const files = (await checkTree(data)).filter((f) => f.endsWith("/data") && Deno.statSync(f).size > 100_000);
    const victim = files[0];
    const bytes = await Deno.readFile(victim);
    bytes[bytes.length >> 1] ^= 0xff;
    await Deno.writeFile(victim, bytes);
    const bad = await isoload(["verify", "--data-dir", data]);
    assert.equal(bad.code, 3, bad.stderr);
    const rel = victim.slice(data.length + 1);
    assert.match(bad.stderr, new RegExp(`warning: ${rel.replaceAll("/", "\\/")}: its bytes hash to sha256:[0-9a-f]{64}, not to its name`));
    assert.match(
      bad.stderr.trim().split("\n").at(-1)!,
      /^isoload verify: Cannot vouch for .*: 1 problems \(first: docker\/registry\/v2\/blobs\//,
    );
    const st = JSON.parse((await isoload(["status", "--data-dir", data, "--json"])).stdout);
    assert.deepEqual([st.registry.lastVerify.ok, st.registry.lastVerify.problems], [false, 1]);
    assert.equal(st.registry.serving.answering, false);
  });
});

Deno.test("status with the built-in registry: serving while it runs, what was served once stopped, a killed serve not serving", async () => {
  const { tar } = await sampleFixture();
  await withTempDir("status-builtin", async (dir) => {
    const data = join(dir, "data");
    const statusOf = async () => JSON.parse((await isoload(["status", "--data-dir", data, "--json"])).stdout).registry.serving;
    const port = freePort();
    assert.equal((await isoload(["load", tar, "--data-dir", data, "--mirror", `127.0.0.1:${port}`, "--no-registries-conf"])).code, 0);
    assert.equal(await statusOf(), undefined);
    assert.match((await isoload(["status", "--data-dir", data])).stdout, /Registry: +never served/);

    const served = await serve(["--data-dir", data, "--listen", `127.0.0.1:${port}`]);
    try {
      const s = await statusOf();
      assert.deepEqual([s.server, s.running, s.answering, s.tls], ["builtin", true, true, false]);
      assert.equal(s.listen, `127.0.0.1:${port}`);
      assert.equal(s.url, `http://127.0.0.1:${port}/v2/`);
      const text = await isoload(["status", "--data-dir", data]);
      assert.match(text.stdout, new RegExp(`Registry: +serving at http://127\\.0\\.0\\.1:${port}/v2/ \\(built-in, listening on 127`));
    } finally {
      assert.equal(await served.stop(), 0);
    }
    // Stopped: the state file is gone; what was served last is kept, and nobody is asked.
    assert.equal(await Deno.stat(join(data, "isoload", "serving.json")).catch(() => undefined), undefined);
    const after = await statusOf();
    assert.deepEqual([after.running, after.answering, after.listen], [false, false, `127.0.0.1:${port}`]);
    assert.match((await isoload(["status", "--data-dir", data])).stdout, /Registry: +not serving \(last served at http:/);

    // Killed (no chance to clean up): the file stays, its process is gone, so it is not serving.
    const port2 = freePort();
    const killed = spawnIsoload(["serve", "--data-dir", data, "--listen", `127.0.0.1:${port2}`]);
    const statePath = join(data, "isoload", "serving.json");
    const deadline = Date.now() + 60_000;
    while (!(await Deno.readTextFile(statePath).catch(() => "")).includes(`"pid": ${killed.child.pid}`)) {
      assert.ok(Date.now() < deadline, "serve wrote its state file");
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await statusOf()).running, true);
    killed.child.kill("SIGKILL");
    assert.equal((await killed.output()).signal, "SIGKILL");
    const stale = await statusOf();
    assert.deepEqual([stale.running, stale.answering, stale.listen, stale.pid], [false, false, `127.0.0.1:${port2}`, killed.child.pid]);
  });
});

Deno.test("compile: x86_64 and aarch64 targets with permissions by name, never -A", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).tasks;
  const targets: string[] = [];
  for (const [name, t] of Object.entries(tasks as Record<string, { command: string }>)) {
    if (!name.startsWith("compile")) continue;
    const cmd = t.command;
    assert.match(cmd, /^deno compile /, name);
    assert.doesNotMatch(cmd, /(^| )(-A|--allow-all)( |$)/, `${name} has no -A`);
    for (const p of ["--allow-read", "--allow-write", "--allow-net", "--allow-env", "--allow-run="]) {
      assert.ok(cmd.includes(p), `${name}: ${p}`);
    }
    assert.match(cmd, /--allow-run=\S*\/skopeo\S*\/podman/, `${name}: the tools it runs, by name`);
    targets.push(/--target (\S+)/.exec(cmd)![1]);
  }
  assert.deepEqual(targets.sort(), ["aarch64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"]);
});
