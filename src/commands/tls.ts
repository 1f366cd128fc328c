/**
 * `isoload tls`: the cluster's registry TLS material, made once on the
 * machine that builds the ISO: one CA every node trusts and one server
 * certificate every node serves with (every node's registry answers at
 * localhost, at the rendezvous address for host0, and at api-int for the
 * installed cluster).
 */
import { resolve } from "node:path";
import type { Logger } from "../util/log.ts";
import { ExitCode, UsageError } from "../util/errors.ts";
import { looksLikeDomain } from "../image/reference.ts";
import { type Command, list, required, str, type Values } from "./_command.ts";
import { describeCertificate, ensureServerCert, tlsDirPaths, type TlsPaths } from "../server/tls.ts";

/** What the server certificate must cover, beyond localhost, 127.0.0.1 and ::1. */
export interface TlsNames {
  hostnames: string[];
  ips: string[];
  /** host0's address (IP or name) every node reaches it at. */
  rendezvous?: string;
  /** `<cluster>.<base domain>`: the certificate covers `api-int.<cluster>.<base domain>`. */
  clusterDomain?: string;
}

/** True for an IPv4 or IPv6 address (not a name). */
export function isIpAddress(text: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(text) || (text.includes(":") && /^[0-9a-fA-F:.]+$/.test(text));
}

/** The names and addresses for the server certificate, before localhost and loopback are added. */
export function certificateNames(n: TlsNames): { hostnames: string[]; ips: string[] } {
  const hostnames = [...n.hostnames];
  const ips = [...n.ips];
  if (n.clusterDomain) hostnames.push(`api-int.${n.clusterDomain}`);
  if (n.rendezvous) (isIpAddress(n.rendezvous) ? ips : hostnames).push(n.rendezvous.replace(/^\[(.*)\]$/, "$1"));
  return { hostnames, ips };
}

/** Makes (or keeps, when it already covers the names) the CA and server certificate in `out`. */
export async function makeTlsDir(out: string, names: TlsNames, log: Logger): Promise<TlsPaths> {
  const want = certificateNames(names);
  const p = await ensureServerCert(tlsDirPaths(resolve(out)), want.hostnames, want.ips);
  const cert = await describeCertificate(await Deno.readTextFile(p.cert));
  log.info(
    `TLS material in ${p.dir}: ca.crt (ship to every node), ca.key (keep it off the ISO), server.crt and server.key ` +
      `(valid until ${cert.notAfter.toISOString().slice(0, 10)}) for ${[...cert.dns, ...cert.ip].join(", ")}`,
  );
  return p;
}

/** The names `isoload tls` (and units, when it makes the material) put in the server certificate, from the flags. */
export function parseTlsNames(v: Values): TlsNames {
  const cluster = str(v, "cluster");
  const base = str(v, "base-domain");
  const joined = str(v, "cluster-domain");
  if (!!cluster !== !!base) throw new UsageError("--cluster and --base-domain go together (api-int.<cluster>.<base domain>)");
  if (joined && cluster) throw new UsageError("give --cluster-domain or --cluster with --base-domain, not both");
  const clusterDomain = joined ?? (cluster ? `${cluster}.${base}` : undefined);
  if (clusterDomain !== undefined && !looksLikeDomain(clusterDomain)) {
    throw new UsageError(`the cluster domain must be a DNS name such as ocp.example.com, got ${JSON.stringify(clusterDomain)}`);
  }
  const ips = list(v, "ip");
  for (const ip of ips) {
    if (!isIpAddress(ip)) throw new UsageError(`--ip must be an IPv4 or IPv6 address, got ${JSON.stringify(ip)}`);
  }
  const hostnames = list(v, "hostname");
  for (const h of hostnames) {
    if (!/^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(h)) {
      throw new UsageError(`--hostname must be a DNS name, got ${JSON.stringify(h)}`);
    }
  }
  const rendezvous = str(v, "rendezvous");
  if (rendezvous !== undefined && !isIpAddress(rendezvous.replace(/^\[(.*)\]$/, "$1")) && !/^[A-Za-z0-9.-]+$/.test(rendezvous)) {
    throw new UsageError(`--rendezvous must be an address or a host name, got ${JSON.stringify(rendezvous)}`);
  }
  return { hostnames, ips, rendezvous, clusterDomain };
}

/** `isoload tls --out DIR …`. */
export const tlsCommand: Command<{ out: string; names: TlsNames }> = {
  summary: "Make the cluster's registry CA and server certificate, before the ISO is built",
  usage: "isoload tls --out DIR [--rendezvous ADDR] [--cluster NAME --base-domain DOMAIN | --cluster-domain DOMAIN]\n" +
    "                   [--hostname NAME…] [--ip ADDR…]",
  description: "Writes DIR/ca.crt and DIR/ca.key (0600: keep it off the ISO) and DIR/server.crt and DIR/server.key (0600): one\n" +
    "CA for the whole cluster and one server certificate every host's registry serves with. Its names: localhost,\n" +
    "127.0.0.1 and ::1 (each host's own registry), the rendezvous address (host0's, which every host mirrors second),\n" +
    "api-int.<cluster>.<base domain> (the installed cluster's), and every --hostname and --ip. Re-running keeps the CA\n" +
    "and keeps the certificate when it already covers the names (otherwise the same CA issues a new one). serve, units,\n" +
    "registries-conf and mirror-config take --tls-dir DIR.",
  options: {
    out: { type: "string", arg: "DIR", help: "Directory to write into (created)." },
    rendezvous: { type: "string", arg: "ADDR", help: "host0's address (agent-config.yaml rendezvousIP) or name." },
    cluster: { type: "string", arg: "NAME", help: "The cluster's name (install-config metadata.name), with --base-domain." },
    "base-domain": { type: "string", arg: "DOMAIN", help: "install-config baseDomain, with --cluster." },
    "cluster-domain": { type: "string", arg: "DOMAIN", help: "<cluster>.<base domain> in one (instead of --cluster/--base-domain)." },
    hostname: { type: "string", arg: "NAME", multiple: true, help: "A further name the registries are reached by (repeatable)." },
    ip: { type: "string", arg: "ADDR", multiple: true, help: "A further address the registries are reached at (repeatable)." },
  },
  examples: [
    "isoload tls --out ./tls --rendezvous 192.168.111.20 --cluster ocp --base-domain example.com",
    "isoload tls --out ./tls --rendezvous 192.168.111.20 --cluster-domain ocp.example.com --ip 192.168.111.5",
  ],
  positionals: 0,
  parse(v) {
    return { out: required(v, "out"), names: parseTlsNames(v) };
  },
  async run(o, log) {
    await makeTlsDir(o.out, o.names, log);
    return ExitCode.ok;
  },
};
