import assert from "node:assert/strict";
import { mirrorRepositoryFor, parseReference, repositoryOf } from "./reference.ts";

Deno.test("parseReference() splits domain, path, tag and digest", () => {
  const d = `sha256:${"a".repeat(64)}`;
  assert.deepEqual(parseReference("quay.io/ns/repo:v1"), { domain: "quay.io", path: "ns/repo", tag: "v1", digest: undefined });
  assert.deepEqual(parseReference(`localhost:5000/repo@${d}`), { domain: "localhost:5000", path: "repo", tag: undefined, digest: d });
  assert.equal(parseReference("ns/repo:v1")?.domain, "");
  assert.equal(parseReference("Quay.io/NS/repo"), undefined, "uppercase path is invalid");
  assert.equal(parseReference("quay.io/ns/repo@sha256:short"), undefined);
  assert.equal(repositoryOf(parseReference("quay.io/a/b:c")!), "quay.io/a/b");
});

Deno.test("mirrorRepositoryFor() keeps the source name, making a port valid in a repository name", () => {
  assert.equal(mirrorRepositoryFor("quay.io/ns/repo"), "quay.io/ns/repo");
  assert.equal(mirrorRepositoryFor("registry.example.com:5000/team/x"), "registry.example.com-5000/team/x");
});
