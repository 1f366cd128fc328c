/** sha256 digests as OCI and distribution write them: `sha256:<64 lowercase hex>`. */
import { createHash } from "node:crypto";

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const HEX_RE = /^[a-f0-9]{64}$/;

/** True for a well-formed sha256 digest string. */
export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

/** True for 64 lowercase hex characters. */
export function isHex(s: string): boolean {
  return HEX_RE.test(s);
}

/** The hex part of a digest; throws SyntaxError when it is not a sha256 digest. */
export function digestHex(digest: string): string {
  if (!DIGEST_RE.test(digest)) throw new SyntaxError(`not a sha256 digest: ${JSON.stringify(digest)}`);
  return digest.slice(7);
}

/** An incremental sha256 over chunks; `digest()` gives it as `sha256:<hex>`, the one form isoload compares. */
export interface DigestHasher {
  update(chunk: Uint8Array): DigestHasher;
  digest(): string;
}

/** A fresh incremental sha256 hasher. */
export function newHasher(): DigestHasher {
  const hash = createHash("sha256");
  const hasher: DigestHasher = {
    update(chunk) {
      hash.update(chunk);
      return hasher;
    },
    digest: () => `sha256:${hash.digest("hex")}`,
  };
  return hasher;
}

/** The digest of bytes held in memory. */
export function digestOf(bytes: Uint8Array | string): string {
  return newHasher().update(typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes).digest();
}
