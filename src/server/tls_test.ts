import assert from "node:assert/strict";
import { join } from "node:path";
import { describeCertificate, ensureCa, tlsDirPaths } from "./tls.ts";
import { InputError } from "../util/errors.ts";

Deno.test("ensureCa: made once, then read back unchanged; a damaged certificate is refused, not handed on", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = tlsDirPaths(join(dir, "tls"));
    const made = await ensureCa(p);
    assert.match((await describeCertificate(made.pem)).subject, /^CN=isoload registry CA /);
    const again = await ensureCa(p);
    assert.equal(again.pem, made.pem, "the existing CA, as written");
    assert.equal(again.pem, await Deno.readTextFile(p.caCert));
    const refused = (e: unknown) => e instanceof InputError && /Cannot prepare the registry CA/.test(e.message);
    await Deno.writeTextFile(p.caCert, made.pem.replace("-----END CERTIFICATE-----", ""));
    await assert.rejects(ensureCa(p), refused, "no END line");
    await Deno.writeTextFile(p.caCert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    await assert.rejects(ensureCa(p), refused, "base64 that is no DER certificate");
    const lines = made.pem.trimEnd().split("\n");
    await Deno.writeTextFile(p.caCert, [...lines.slice(0, 3), ...lines.slice(4)].join("\n") + "\n");
    await assert.rejects(ensureCa(p), refused, "a line of the certificate missing");
    // What a user may put there and X.509 reads: CRLF lines, text before the block, a second certificate after it.
    for (const text of [made.pem.replaceAll("\n", "\r\n"), `subject=CN=isoload\n${made.pem}`, made.pem + made.pem]) {
      await Deno.writeTextFile(p.caCert, text);
      assert.equal((await ensureCa(p)).pem, text);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
