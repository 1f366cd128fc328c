import assert from "node:assert/strict";
import { expandGlob, globComponentRegExp, naturalCompare, planParts } from "./parts.ts";
import { InputError } from "../util/errors.ts";

function throwsWith(fn: () => unknown, text: string): void {
  assert.throws(fn, (e) => e instanceof InputError && e.message.includes(text), `expected an InputError with ${JSON.stringify(text)}`);
}

/** A fake directory listing: the given files, plus `extra` names beside them. */
function lister(files: string[], extra: string[] = []): (dir: string) => string[] {
  const all = [...files, ...extra];
  return (dir) => all.filter((f) => f.slice(0, f.lastIndexOf("/")) === dir).map((f) => f.slice(f.lastIndexOf("/") + 1));
}

Deno.test("naturalCompare() orders digit runs by value", () => {
  assert.deepEqual(["p10", "p2", "p1", "a"].sort(naturalCompare), ["a", "p1", "p2", "p10"]);
  assert.deepEqual(["x.10", "x.9", "x.09"].sort(naturalCompare), ["x.9", "x.09", "x.10"]);
});

Deno.test("globComponentRegExp() matches *, ?, sets and leaves dots alone", () => {
  const re = globComponentRegExp("mirror_*.tar");
  assert.deepEqual(re.test("mirror_000001.tar"), true);
  assert.deepEqual(re.test("mirror_000001.tarx"), false);
  assert.deepEqual(globComponentRegExp("data.0[0-1]").test("data.01"), true);
  assert.deepEqual(globComponentRegExp("data.0[!0]").test("data.00"), false);
  assert.deepEqual(globComponentRegExp("*").test(".hidden"), false);
  assert.deepEqual(globComponentRegExp("a?c").test("abc"), true);
});

Deno.test("expandGlob() matches per component, in natural order", () => {
  const files = ["/iso/images/mirror_000010.tar", "/iso/images/mirror_000002.tar", "/iso/images/other", "/iso/x/mirror_000001.tar"];
  const list = (dir: string) => {
    if (dir === "/iso") return ["images", "x"];
    return lister(files)(dir);
  };
  assert.deepEqual(expandGlob("/iso/images/mirror_*.tar", list), ["/iso/images/mirror_000002.tar", "/iso/images/mirror_000010.tar"]);
  assert.deepEqual(expandGlob("/iso/*/mirror_000001.tar", list), ["/iso/images/mirror_000001.tar", "/iso/x/mirror_000001.tar"]);
  assert.deepEqual(expandGlob("/iso/images/nothing*", list), []);
});

Deno.test("planParts() keeps a single file as one archive", () => {
  assert.deepEqual(planParts(["/a/images.tar"], lister(["/a/images.tar"])), [{ name: "/a/images.tar", chunks: ["/a/images.tar"] }]);
  // A lone name ending in a number is a whole file, not a chunk.
  assert.deepEqual(planParts(["/a/release.4.16"], lister(["/a/release.4.16"])), [{ name: "/a/release.4.16", chunks: ["/a/release.4.16"] }]);
});

Deno.test("planParts() orders an oc-mirror series by number", () => {
  const files = ["/d/mirror_000010.tar", "/d/mirror_000002.tar", "/d/mirror_000001.tar"];
  const more = Array.from({ length: 7 }, (_, i) => `/d/mirror_00000${i + 3}.tar`);
  const parts = planParts([...files, ...more], lister([...files, ...more]));
  assert.deepEqual(parts.map((p) => p.name), Array.from({ length: 10 }, (_, i) => `/d/mirror_${String(i + 1).padStart(6, "0")}.tar`));
});

Deno.test("planParts() concatenates the chunks of a split file in order", () => {
  const files = ["/iso/images.tar.02", "/iso/images.tar.00", "/iso/images.tar.01"];
  assert.deepEqual(planParts(files, lister(files)), [{
    name: "/iso/images.tar.00…02",
    chunks: ["/iso/images.tar.00", "/iso/images.tar.01", "/iso/images.tar.02"],
  }]);
  const ones = ["/iso/data.1", "/iso/data.2"];
  assert.deepEqual(planParts(ones, lister(ones))[0].chunks, ones);
});

Deno.test("planParts() reads a series whose parts are themselves split", () => {
  const files = ["/iso/mirror_000002.tar.00", "/iso/mirror_000001.tar.01", "/iso/mirror_000001.tar.00"];
  assert.deepEqual(planParts(files, lister(files)).map((p) => p.chunks), [
    ["/iso/mirror_000001.tar.00", "/iso/mirror_000001.tar.01"],
    ["/iso/mirror_000002.tar.00"],
  ]);
});

Deno.test("planParts() names a missing part or chunk", () => {
  const series = ["/d/mirror_000001.tar", "/d/mirror_000003.tar"];
  throwsWith(() => planParts(series, lister(series)), "part /d/mirror_000002.tar is missing");
  const chunks = ["/d/data.00", "/d/data.02"];
  throwsWith(() => planParts(chunks, lister(chunks)), "chunk /d/data.01 is missing");
  const late = ["/d/data.01", "/d/data.02"];
  throwsWith(() => planParts(late, lister(late, ["/d/data.00"])), "chunk /d/data.00 belongs with the chunks given");
  const start = ["/d/mirror_000002.tar", "/d/mirror_000003.tar"];
  throwsWith(() => planParts(start, lister(start)), "part /d/mirror_000001.tar is missing");
});

Deno.test("planParts() refuses a part lying beside the given ones but not given", () => {
  const one = ["/iso/mirror_000001.tar"];
  throwsWith(() => planParts(one, lister(one, ["/iso/mirror_000002.tar"])), "part /iso/mirror_000002.tar belongs");
  const chunks = ["/iso/images.tar.00", "/iso/images.tar.01"];
  throwsWith(() => planParts(chunks, lister(chunks, ["/iso/images.tar.02"])), "chunk /iso/images.tar.02 belongs");
  throwsWith(() => planParts(["/iso/images.tar.00"], lister(["/iso/images.tar.00"], ["/iso/images.tar.01"])), "images.tar.01");
});

Deno.test("planParts() names an extra part", () => {
  const dup = ["/a/mirror_000001.tar", "/b/mirror_000001.tar"];
  throwsWith(() => planParts(dup, lister(dup)), "/b/mirror_000001.tar as a part: it is an extra part");
  const other = ["/d/mirror_000001.tar", "/d/mirror_000002.tar", "/d/layout.tar"];
  throwsWith(() => planParts(other, lister(other)), "Cannot use /d/layout.tar as a part of the same source");
  const twice = ["/d/a.tar", "/d/a.tar"];
  throwsWith(() => planParts(twice, lister(twice)), "Cannot use /d/a.tar twice");
  const mixed = ["/d/data.00", "/d/data.0"];
  throwsWith(() => planParts(mixed, lister(mixed)), "it is an extra chunk");
});

Deno.test("planParts() accepts parts of one series spread over several directories (several media)", () => {
  const files = ["/cd1/mirror_000001.tar", "/cd2/mirror_000002.tar"];
  assert.deepEqual(planParts(files, lister(files)).map((p) => p.name), files);
});
