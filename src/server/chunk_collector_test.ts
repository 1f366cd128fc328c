import assert from "node:assert/strict";
import { join } from "node:path";
import { chunkCollector } from "./chunk_collector.ts";

Deno.test("chunkCollector() collects once per `every` bytes counted, young generation only, synchronously", () => {
  const calls: unknown[] = [];
  const count = chunkCollector((o) => calls.push(o), 10);
  for (const n of [4, 4, 4, 9, 1, 30]) count(n);
  assert.deepEqual(calls, Array(3).fill({ type: "minor", execution: "sync" }));
});

Deno.test("chunkCollector() without V8's gc does nothing", () => {
  const count = chunkCollector(undefined, 1);
  count(1 << 30);
});

Deno.test("countChunk under --expose-gc keeps dead chunk buffers from piling up", async () => {
  // Each 1 MiB chunk is dropped at once, as a sent chunk is; without the collections V8 lets ~64 MB of them pile up first.
  const script = `
    import { countChunk } from ${JSON.stringify(new URL("./chunk_collector.ts", import.meta.url).href)};
    let most = 0, sum = 0;
    for (let i = 0; i < 512; i++) {
      const c = new Uint8Array(1 << 20);
      c[i] = 1;
      sum += c[i];
      countChunk(c.length);
      most = Math.max(most, Deno.memoryUsage().external);
    }
    console.log(JSON.stringify({ most, sum }));
  `;
  const dir = await Deno.makeTempDir({ prefix: "isoload-chunks-" });
  try {
    const file = join(dir, "chunks.ts");
    await Deno.writeTextFile(file, script);
    const run = async (flags: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), { args: ["run", "--quiet", ...flags, file], stderr: "inherit" }).output();
      assert.ok(out.success);
      return JSON.parse(new TextDecoder().decode(out.stdout)) as { most: number; sum: number };
    };
    const collected = await run(["--v8-flags=--expose-gc"]);
    assert.equal(collected.sum, 512);
    assert.ok(collected.most < 32 << 20, `external memory peaked at ${collected.most} bytes`);
    // The same loop without the flag: the counter is a no-op and the script still runs.
    assert.equal((await run([])).sum, 512);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
