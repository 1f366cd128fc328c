import assert from "node:assert/strict";
import { binaryBlobPath } from "../server/binary.ts";
import { type BootScriptOptions, renderBootScript, shellQuote } from "./installed_script.ts";

const options: BootScriptOptions = {
  binarySha256: "c".repeat(64),
  binaryPath: "/usr/local/bin/isoload",
  isoLabel: "rhcos-*",
  isoMount: "/run/isoload/iso",
  isoBinary: "images/isoload",
  isoArchive: "images/mirror_*.tar",
  peers: ["https://api-int.ocp.example.com:22625"],
  tlsDir: "/etc/isoload/tls",
  dataDir: "/var/lib/isoload",
  listen: "0.0.0.0:22625",
};

Deno.test("shellQuote() keeps any text literal in bash, quotes included", () => {
  assert.equal(shellQuote("a b"), "'a b'");
  assert.equal(shellQuote("it's $HOME"), `'it'\\''s $HOME'`);
});

Deno.test("renderBootScript() asks peers for the binary at its digest's blob path and refuses a malformed digest", () => {
  const s = renderBootScript(options);
  assert.ok(s.startsWith("#!/bin/bash\n"));
  assert.ok(s.includes(`"$peer${binaryBlobPath("$want")}"`));
  assert.equal(binaryBlobPath("c".repeat(64)), `/v2/_isoload/binary/blobs/sha256:${"c".repeat(64)}`);
  assert.match(s, /^iso_archive='images\/mirror_\*\.tar'$/m);
  assert.throws(() => renderBootScript({ ...options, binarySha256: "sha256:" + "c".repeat(64) }), TypeError);
});

Deno.test("renderBootScript() serves the data directory, with the ISO in place (kept on disk) when attached, else every peer", () => {
  const s = renderBootScript({ ...options, peers: ["https://a:1", "https://b:2"] });
  assert.match(s, /local args=\(--data-dir "\$data_dir" --tls-dir "\$tls_dir" --listen "\$listen"\)/);
  assert.match(s, /exec "\$binary" serve --source "\$iso_mount\/\$iso_archive" --persist "\$\{args\[@\]\}"/);
  assert.match(s, /exec "\$binary" serve "\$\{args\[@\]\}"/);
  assert.match(s, /^peers=\('https:\/\/a:1' 'https:\/\/b:2'\)$/m);
});
