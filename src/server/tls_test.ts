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
    await Deno.writeTextFile(p.caCert, made.pem.replace("-----END CERTIFICATE-----", ""));
    await assert.rejects(ensureCa(p), (e) => e instanceof InputError && /Cannot prepare the registry CA/.test(e.message));
    await Deno.writeTextFile(p.caCert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    await assert.rejects(ensureCa(p), InputError, "base64 that is no DER certificate");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
