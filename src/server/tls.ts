/**
 * The registry's TLS material (RHCOS has no openssl): a CA that nodes trust,
 * and a server certificate it signs for the names and addresses the registry
 * is reached at. One implementation for both places it lives: a TLS directory
 * made before the ISO is built (`isoload tls --out DIR`, shipped to every
 * node) and a data directory's `isoload/tls` (made on first use by `serve
 * --tls`). Kept across runs; the server certificate is re-issued by the same
 * CA when asked for a name it lacks, so nodes that trust the CA keep trusting
 * the registry.
 */
import type * as X509 from "@peculiar/x509";
import { join } from "node:path";
import { dataDirPaths } from "../store/paths.ts";
import { atomicWrite, readTextIfExists } from "../util/atomic_write.ts";
import { EnvironmentError, InputError } from "../util/errors.ts";

let x509Module: Promise<typeof X509> | undefined;

/**
 * @peculiar/x509, with the reflect polyfill it needs, loaded on first use: evaluating the two cost every command's start
 * 0.02 s (the bundle, 0.09 → 0.07 s) to 0.05 s (main.ts), though only the commands that make or read a certificate need them.
 */
function x509Lib(): Promise<typeof X509> {
  return x509Module ??= (async () => {
    await import("reflect-metadata");
    const m = await import("@peculiar/x509");
    m.cryptoProvider.set(crypto);
    return m;
  })();
}

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY = 86_400_000;

/** Where the material lives in a data directory. */
export interface TlsPaths {
  dir: string;
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

/** The files of a TLS directory: `ca.crt`, `ca.key` (0600, never shipped), `server.crt`, `server.key` (0600). */
export function tlsDirPaths(dir: string): TlsPaths {
  return { dir, caCert: join(dir, "ca.crt"), caKey: join(dir, "ca.key"), cert: join(dir, "server.crt"), key: join(dir, "server.key") };
}

/** A data directory's TLS directory, `DIR/isoload/tls` (from the path mapper). */
export function tlsPaths(dataDir: string): TlsPaths {
  return tlsDirPaths(dataDirPaths(dataDir).tls);
}

/** The CA certificate of a TLS directory, for commands that only trust it (`--tls-dir`). */
export async function readTlsCa(dir: string): Promise<string> {
  const path = tlsDirPaths(dir).caCert;
  const text = await readTextIfExists(path).catch((e) => {
    throw new InputError(`Cannot use the TLS directory ${dir}: cannot read ${path}`, { cause: e });
  });
  if (text === undefined) {
    throw new InputError(`Cannot use the TLS directory ${dir}: ${path} is missing (isoload tls --out ${dir} makes it)`);
  }
  return checkCaPem(text, path);
}

/**
 * A TLS directory given to serve or trust (`--tls-dir`): its CA certificate,
 * server certificate and key must all be there and be PEM. The CA key is not
 * needed (nodes never get it).
 */
export async function readTlsDir(dir: string): Promise<TlsPaths & { caPem: string }> {
  const p = tlsDirPaths(dir);
  const texts: string[] = [];
  for (const path of [p.caCert, p.cert, p.key]) {
    const text = await readTextIfExists(path).catch((e) => {
      throw new InputError(`Cannot use the TLS directory ${dir}: cannot read ${path}`, { cause: e });
    });
    if (text === undefined || !text.includes("-----BEGIN ")) {
      throw new InputError(
        `Cannot use the TLS directory ${dir}: ${path} is ${text === undefined ? "missing" : "not PEM"} (isoload tls --out ${dir} makes it)`,
      );
    }
    texts.push(text);
  }
  return { ...p, caPem: await checkCaPem(texts[0], p.caCert) };
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

function unpem(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** Whether `text` is one PEM certificate block whose bytes are exactly one DER SEQUENCE (its length as encoded). */
function isOneWholeDerBlock(text: string): boolean {
  if (!/^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?$/.test(text)) return false;
  let der: Uint8Array;
  try {
    der = unpem(text);
  } catch {
    return false; // not base64
  }
  if (der.length < 2 || der[0] !== 0x30) return false;
  const first = der[1];
  if (first < 0x80) return 2 + first === der.length;
  const n = first & 0x7f;
  if (n < 1 || n > 3 || der.length < 2 + n) return false;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + der[2 + i];
  return 2 + n + len === der.length;
}

function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f; // positive, as RFC 5280 requires
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * The CA of a TLS directory, made when absent. Returns its certificate (PEM) and key. An existing CA in the shape
 * isoload writes is not parsed here (its key is): a load, which only hands the PEM on, then loads no X.509 code.
 */
export async function ensureCa(p: TlsPaths): Promise<{ pem: string; key: CryptoKey }> {
  try {
    const [certText, keyText] = [await readTextIfExists(p.caCert), await readTextIfExists(p.caKey)];
    if (certText && keyText) {
      const key = await crypto.subtle.importKey("pkcs8", unpem(keyText), ALG, false, ["sign"]);
      // The CA isoload wrote (one PEM block holding one whole DER SEQUENCE) is handed on as it is; anything else is
      // parsed, and accepted or refused, as a certificate.
      if (!isOneWholeDerBlock(certText)) await checkCaPem(certText, p.caCert);
      return { pem: certText, key };
    }
    const x509 = await x509Lib();
    const keys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `CN=isoload registry CA ${new Date(now).toISOString().slice(0, 10)}`,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 3650 * DAY),
      signingAlgorithm: ALG,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    // Key first: a CA certificate on disk always has its key beside it.
    await atomicWrite(p.caKey, pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey)), { mode: 0o600 });
    const certPem = cert.toString("pem") + "\n";
    await atomicWrite(p.caCert, certPem);
    return { pem: certPem, key: keys.privateKey };
  } catch (e) {
    if (e instanceof EnvironmentError) throw e;
    throw new InputError(`Cannot prepare the registry CA in ${p.dir}`, { cause: e });
  }
}

/** Names and addresses a server certificate covers: what was asked, plus localhost and loopback. */
export function serverSans(hostnames: string[], ips: string[]): { dns: string[]; ip: string[] } {
  const dns = [...new Set(["localhost", ...hostnames.map((h) => h.toLowerCase())])].sort();
  const ip = [...new Set(["127.0.0.1", "::1", ...ips])].sort();
  return { dns, ip };
}

function sansOf(x509: typeof X509, cert: X509.X509Certificate): { dns: string[]; ip: string[] } {
  const ext = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = ext?.names.items ?? [];
  return {
    dns: names.filter((n) => n.type === "dns").map((n) => n.value.toLowerCase()),
    ip: names.filter((n) => n.type === "ip").map((n) => n.value),
  };
}

/**
 * The server certificate and key for the registry, issued by the TLS
 * directory's CA (made when absent) for `hostnames` and `ips` (plus localhost
 * and loopback). An existing one is kept when it covers them and is valid for
 * another 30 days.
 */
export async function ensureServerCert(p: TlsPaths, hostnames: string[], ips: string[]): Promise<TlsPaths> {
  const ca = await ensureCa(p);
  const want = serverSans(hostnames, ips);
  try {
    const x509 = await x509Lib();
    const caCert = new x509.X509Certificate(ca.pem);
    const current = await readTextIfExists(p.cert);
    if (current && await readTextIfExists(p.key)) {
      const cert = new x509.X509Certificate(current);
      const have = sansOf(x509, cert);
      const covers = want.dns.every((d) => have.dns.includes(d)) && want.ip.every((i) => have.ip.includes(i));
      if (covers && cert.issuer === caCert.subject && cert.notAfter.getTime() > Date.now() + 30 * DAY) return p;
    }
    const keys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as CryptoKeyPair;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `CN=${want.dns.find((d) => d !== "localhost") ?? "localhost"}`,
      issuer: caCert.subject,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 825 * DAY),
      signingAlgorithm: ALG,
      publicKey: keys.publicKey,
      signingKey: ca.key,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          ...want.dns.map((value) => ({ type: "dns" as const, value })),
          ...want.ip.map((value) => ({ type: "ip" as const, value })),
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(caCert),
      ],
    });
    await atomicWrite(p.key, pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey)), { mode: 0o600 });
    await atomicWrite(p.cert, cert.toString("pem") + "\n");
    return p;
  } catch (e) {
    if (e instanceof EnvironmentError) throw e;
    throw new InputError(`Cannot issue the registry's server certificate in ${p.dir}`, { cause: e });
  }
}

/** What a PEM certificate covers and until when (for messages and tests). */
export async function describeCertificate(
  pem: string,
): Promise<{ subject: string; issuer: string; notAfter: Date; dns: string[]; ip: string[] }> {
  const x509 = await x509Lib();
  const cert = new x509.X509Certificate(pem);
  return { subject: cert.subject, issuer: cert.issuer, notAfter: cert.notAfter, ...sansOf(x509, cert) };
}

/** DIR's CA certificate (PEM), or undefined when the registry of DIR has no TLS. */
export async function readCa(dataDir: string): Promise<string | undefined> {
  return await readTextIfExists(tlsPaths(dataDir).caCert);
}

/** Checks that text is one PEM certificate; returns it normalised to end with a newline. */
export async function checkCaPem(text: string, where: string): Promise<string> {
  const x509 = await x509Lib();
  try {
    new x509.X509Certificate(text);
  } catch (e) {
    throw new InputError(`Cannot use the CA in ${where}: not a PEM certificate`, { cause: e });
  }
  return text.endsWith("\n") ? text : text + "\n";
}
