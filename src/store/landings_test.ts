import assert from "node:assert/strict";
import { Landings } from "./landings.ts";

const A = `sha256:${"a".repeat(64)}`;
const B = `sha256:${"b".repeat(64)}`;
const where = new Map([[A, { file: "/x.tar", offset: 512, size: 10 }], [B, { file: "/x.tar", offset: 1536, size: 20 }]]);

Deno.test("Landings: a blob followed before the pass begins it is wanted next, followed as written, and resolves once landed", async () => {
  const l = new Landings();
  l.locate(where);
  const g = l.follow(B);
  assert.ok(g && g !== "landed");
  assert.deepEqual(l.nextWanted(), { digest: B, where: where.get(B) });
  assert.equal(l.nextWanted(), undefined, "asked for once");
  l.begin(B, "/tmp/b.1");
  l.wrote(B, 12);
  assert.deepEqual(g.progress, { written: 12, attempt: 1, tmp: "/tmp/b.1" });
  assert.equal(l.verified(B), true, "a followed blob is to be settled soon");
  l.landed(B);
  await g.done;
  assert.equal(l.follow(B), "landed");
});

Deno.test("Landings: a blob the pass began is not wanted; one verified and followed later hurries its settle", () => {
  const l = new Landings();
  l.locate(where);
  let hurried = 0;
  l.hurry = () => hurried++;
  l.begin(A, "/tmp/a.1");
  l.follow(A);
  assert.equal(l.nextWanted(), undefined);
  assert.equal(l.verified(A), true);
  l.follow(A);
  assert.equal(hurried, 1);
});

Deno.test("Landings: a failed blob and the pass's end reject followers; after the end nothing is followed", async () => {
  const l = new Landings();
  l.locate(where);
  const a = l.follow(A);
  const b = l.follow(B);
  assert.ok(a && a !== "landed" && b && b !== "landed");
  l.begin(A, "/tmp/a.1");
  l.failed(A, new Error("bytes do not match"));
  await assert.rejects(a.done, /do not match/);
  l.close();
  await assert.rejects(b.done, /ended before this blob landed/);
  assert.equal(l.follow(B), undefined, "no load runs: serve it from elsewhere");
  assert.equal(l.nextWanted(), undefined);
});
