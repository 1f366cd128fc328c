import assert from "node:assert/strict";
import { join } from "node:path";
import { RegistryStore } from "./storage_tree.ts";
import { onMemoryFs } from "../util/disk_space.ts";

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, "0")}`;

/** Writes 20 links into a fresh store under `base` and checks each file, then that a second pass writes none. */
async function writeLinksUnder(base: string): Promise<void> {
  const root = await Deno.makeTempDir({ dir: base, prefix: "isoload-links-" });
  try {
    const store = new RegistryStore(root);
    const links: [string, string][] = Array.from({ length: 20 }, (_, i) => [
      `repositories/r${i % 3}/_layers/sha256/${digest(i).slice(7)}/link`,
      digest(i),
    ]);
    assert.equal(await store.writeLinks(links), 20);
    for (const [rel, d] of links) assert.equal(await Deno.readTextFile(join(store.v2, rel)), d);
    // No temp file is left beside any link.
    for (const [rel] of links) {
      const names = [...Deno.readDirSync(join(store.v2, rel, ".."))].map((e) => e.name);
      assert.deepEqual(names, ["link"]);
    }
    assert.equal(await store.writeLinks(links), 0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("writeLinks() writes every link, none twice, on a disk (four at a time through the I/O threads)", async () => {
  const base = Deno.env.get("TMPDIR") ?? "/tmp";
  if (await onMemoryFs(base)) {
    console.log(`NOTICE: skipped: ${base} is tmpfs here`);
    return;
  }
  await writeLinksUnder(base);
});

Deno.test("writeLinks() writes every link, none twice, on tmpfs (one by one)", async () => {
  if (!(await onMemoryFs("/dev/shm").catch(() => false))) {
    console.log("NOTICE: skipped: /dev/shm is not tmpfs here");
    return;
  }
  await writeLinksUnder("/dev/shm");
});

Deno.test("onMemoryFs() answers for a path that does not exist yet from its nearest parent", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await onMemoryFs(join(dir, "a", "b")), await onMemoryFs(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
