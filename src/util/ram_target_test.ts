import assert from "node:assert/strict";
import { ramFsOf, ramTargetRefusal } from "./ram_target.ts";

const GB = 1e9;

Deno.test("ramTargetRefusal() refuses a RAM-backed DIR only past half of MemAvailable, unless allowed", () => {
  const base = { ramFs: "tmpfs", memAvailable: 16 * GB, allow: false };
  assert.equal(ramTargetRefusal({ ...base, need: 8 * GB }), undefined, "exactly half fits");
  const why = ramTargetRefusal({ ...base, need: 20 * GB });
  assert.match(why!, /write 20.0 GB into a tmpfs \(RAM\), more than half of the 16\.0 GB of memory available \(limit 8\.00 GB\)/);
  assert.match(why!, /--allow-ram-target/);
  assert.equal(ramTargetRefusal({ ...base, need: 20 * GB, allow: true }), undefined);
  assert.equal(ramTargetRefusal({ ...base, ramFs: undefined, need: 20 * GB }), undefined, "a disk is not limited by memory");
  assert.equal(ramTargetRefusal({ ...base, memAvailable: undefined, need: 20 * GB }), undefined, "unknown memory: no guess");
  assert.match(ramTargetRefusal({ ...base, ramFs: "ramfs", need: 9 * GB })!, /into a ramfs/);
});

Deno.test("ramFsOf() knows /dev/shm is a tmpfs and / is not, also for paths not made yet", async () => {
  if (await Deno.stat("/dev/shm").then(() => false, () => true)) return;
  assert.equal(await ramFsOf("/dev/shm/isoload-not-there/x"), "tmpfs");
  assert.equal(await ramFsOf("/proc/self"), undefined);
});
