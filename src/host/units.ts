/**
 * The systemd units that run isoload when a host boots the agent ISO, and the
 * Ignition 3 fragment carrying them: pure renderers, so the same options give
 * the same bytes.
 *
 * Every host of an agent install boots the same ISO (and the same Ignition),
 * so every host serves the images from its own copy of the ISO, in place, at
 * port 22625 (isoload-registry.service, Type=notify), and its registries.conf
 * lists its own registry first and host0's (the rendezvous host) second
 * (isoload-registries-conf.service). Nothing is copied into the live `/var`,
 * which is RAM. A data directory on a real disk (`dataDir`) brings back the
 * copy: isoload-load.service, then serving from DIR. Storage mode adds a load
 * into containers-storage for CRI-O while the in-place registry serves the
 * live ISO's podman pulls.
 *
 * No unit is After=network-online.target: serving on the wildcard address
 * needs no network, and the agent ISO's agent-interactive-console.service sits
 * between NetworkManager and NetworkManager-wait-online, so waiting for the
 * network there would make an ordering cycle.
 */
import { caFileText } from "./ca_install.ts";

/** Services that pull images on an agent-based install: held back until the images are pullable. */
export const DEFAULT_BEFORE = [
  "crio.service",
  "kubelet.service",
  "release-image.service",
  "agent-extract-tui.service",
  "agent-interactive-console.service",
  "agent.service",
  "assisted-service-pod.service",
];

/** What pulls from containers-storage only (CRI-O and kubelet): storage mode's load is ordered before these. */
export const STORAGE_BEFORE = ["crio.service", "kubelet.service"];

/** Where a node keeps the image list (isoload inspect --json of the archive). */
export const NODE_EXPECT_PATH = "/etc/isoload/images.json";

/** Where the TLS material lands on every host. */
export const HOST_TLS_DIR = "/etc/isoload/tls";

/** Where the agent ISO's live environment mounts the ISO (fedora-coreos-config 20live, as openshift/appliance reads it). */
export const ISO_MOUNT = "/run/media/iso";

/** The archive on the mounted ISO unless --source says otherwise: every part of an oc-mirror archive. */
export const DEFAULT_SOURCE = `${ISO_MOUNT}/images/mirror_*.tar`;

/** Options of `isoload units`. */
export interface UnitsOptions {
  /** Every host gets the same units; the role only names whom they are for. */
  role: "all" | "host0" | "node";
  mode: "registry" | "storage";
  /** host0's registry, HOST:PORT at the rendezvous address; its port is every host's. */
  mirror: string;
  /** The archive on the mounted ISO: a path or a glob isoload expands. */
  source: string;
  /** Copy into this data directory (on a real disk) and serve from there; undefined: serve in place. */
  dataDir?: string;
  /** Storage mode's data directory (scratch for the copy into containers-storage). */
  storageDataDir: string;
  before: string[];
  /** Path of the isoload binary on the hosts. */
  binary: string;
  registryCommand?: string;
  registryImage?: string;
  /** The cluster's TLS material to ship (PEM texts); undefined: plain HTTP. */
  tls?: { ca: string; cert: string; key: string };
  certsDir: string;
  /** The image list to ship (its text), when known. */
  expectText?: string;
}

/** A unit file. */
export interface Unit {
  name: string;
  text: string;
}

/** A plain file the fragment installs. */
export interface ShippedFile {
  path: string;
  mode: number;
  text: string;
  /** Travels only inside the Ignition config (the server key), never as a loose file. */
  secret?: boolean;
}

/** Quotes one argument of an Exec line the way systemd parses it (and keeps % and $ literal). */
export function execArg(arg: string): string {
  const lit = arg.replaceAll("%", "%%").replaceAll("$", "$$$$");
  if (lit !== "" && !/[\s"'\\;]/.test(lit)) return lit;
  return `"${lit.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

function exec(args: string[]): string {
  return args.map(execArg).join(" ");
}

function unit(sections: Record<string, (string | undefined)[]>): string {
  return Object.entries(sections)
    .map(([name, lines]) => [`[${name}]`, ...lines.filter((l): l is string => l !== undefined)].join("\n"))
    .join("\n\n") + "\n";
}

const HEADER = "# Written by isoload units: regenerate rather than edit.";

/** The directory a path or glob lives in: the part before the first wildcard, for RequiresMountsFor=. */
export function fixedDirOf(pathOrGlob: string): string {
  const wild = pathOrGlob.search(/[*?[]/);
  const fixed = wild === -1 ? pathOrGlob : pathOrGlob.slice(0, wild);
  return fixed.slice(0, fixed.lastIndexOf("/")) || "/";
}

/** The port of HOST:PORT. */
function portOf(hostPort: string): string {
  return hostPort.slice(hostPort.lastIndexOf(":") + 1);
}

/** The mirrors every host lists, in order: its own registry, then host0's. */
export function hostMirrors(o: Pick<UnitsOptions, "mirror">): string[] {
  return [...new Set([`localhost:${portOf(o.mirror)}`, o.mirror])];
}

/** The units (and files) for the options. */
export function renderUnits(o: UnitsOptions): { units: Unit[]; files: ShippedFile[] } {
  const mirrors = hostMirrors(o);
  const local = mirrors[0];
  const before = `Before=${o.before.join(" ")}`;
  const tlsArgs = o.tls ? ["--tls-dir", HOST_TLS_DIR] : [];
  const listen = `[::]:${portOf(o.mirror)}`;
  const files: ShippedFile[] = [];
  if (o.expectText !== undefined) files.push({ path: NODE_EXPECT_PATH, mode: 0o644, text: o.expectText });
  if (o.tls) {
    files.push(
      { path: `${HOST_TLS_DIR}/ca.crt`, mode: 0o644, text: o.tls.ca },
      { path: `${HOST_TLS_DIR}/server.crt`, mode: 0o644, text: o.tls.cert },
      { path: `${HOST_TLS_DIR}/server.key`, mode: 0o600, text: o.tls.key, secret: true },
      // Every host trusts every host's registry: its own at localhost and host0's, by the one cluster CA.
      ...mirrors.map((m) => ({ path: `${o.certsDir}/${m}/ca.crt`, mode: 0o644, text: caFileText(m, o.tls!.ca) })),
      // Clients outside containers/image (the agent's Go code, curl) trust it too once update-ca-trust runs at boot.
      { path: "/etc/pki/ca-trust/source/anchors/isoload-registry-ca.crt", mode: 0o644, text: o.tls.ca },
    );
  }

  const conf = unit({
    Unit: [
      `Description=isoload: mirror the install images at this host's own registry (${local}), then host0's (${o.mirror})`,
      "After=local-fs.target",
      `ConditionPathExists=${NODE_EXPECT_PATH}`,
      `${before} isoload-registry.service`,
    ],
    Service: [
      "Type=oneshot",
      "RemainAfterExit=yes",
      `ExecStart=${
        exec([
          o.binary,
          "registries-conf",
          ...mirrors.flatMap((m) => ["--mirror", m]),
          "--expect",
          NODE_EXPECT_PATH,
          "--certs-dir",
          o.certsDir,
          ...tlsArgs,
        ])
      }`,
    ],
    Install: ["WantedBy=multi-user.target"],
  });
  const units: Unit[] = [{ name: "isoload-registries-conf.service", text: `${HEADER}\n${conf}` }];

  const copying = o.mode === "registry" && o.dataDir !== undefined;
  if (copying) {
    const load = unit({
      Unit: [
        `Description=isoload: copy the install images from ${o.source} into ${o.dataDir}`,
        "After=local-fs.target",
        `RequiresMountsFor=${fixedDirOf(o.source)} ${o.dataDir}`,
        before,
      ],
      Service: [
        "Type=oneshot",
        "RemainAfterExit=yes",
        // registries.conf is isoload-registries-conf.service's: one writer.
        `ExecStart=${exec([o.binary, "load", o.source, "--data-dir", o.dataDir!, "--no-registries-conf"])}`,
        // Reading and verifying ~20 GB takes minutes; a re-run after a reboot takes a second.
        "TimeoutStartSec=infinity",
      ],
      Install: ["WantedBy=multi-user.target"],
    });
    units.push({ name: "isoload-load.service", text: `${HEADER}\n${load}` });
  }

  const serveArgs = copying
    ? [o.binary, "serve", "--data-dir", o.dataDir!, "--listen", listen]
    : [o.binary, "serve", "--source", o.source, "--listen", listen];
  // Without a registry named, isoload serves with its own built-in registry: the ISO needs nothing else.
  if (copying && o.registryImage) serveArgs.push("--registry-image", o.registryImage);
  else if (copying && o.registryCommand) serveArgs.push("--registry-command", o.registryCommand);
  serveArgs.push(...tlsArgs);
  const serve = unit({
    Unit: [
      copying
        ? `Description=isoload: read-only registry for the install images in ${o.dataDir} at ${listen}`
        : `Description=isoload: serve the install images from this host's ISO in place at ${listen}`,
      ...(copying ? ["Requires=isoload-load.service", "After=isoload-load.service"] : [`RequiresMountsFor=${fixedDirOf(o.source)}`]),
      before,
    ],
    Service: [
      "Type=notify",
      `ExecStart=${exec(serveArgs)}`,
      "Restart=on-failure",
      "RestartSec=2s",
      // One pass over the archive's headers: seconds on a disk, minutes over slow virtual media.
      "TimeoutStartSec=30min",
    ],
    Install: ["WantedBy=multi-user.target"],
  });
  units.push({ name: "isoload-registry.service", text: `${HEADER}\n${serve}` });

  if (o.mode === "storage") {
    const load = unit({
      Unit: [
        `Description=isoload: copy the install images from ${o.source} into containers-storage`,
        // The in-place registry indexes the ISO first: one reader at a time on slow media.
        "After=local-fs.target isoload-registry.service",
        `RequiresMountsFor=${fixedDirOf(o.source)} ${o.storageDataDir}`,
        `Before=${STORAGE_BEFORE.join(" ")}`,
      ],
      Service: [
        "Type=oneshot",
        "RemainAfterExit=yes",
        `ExecStart=${exec([o.binary, "load", o.source, "--data-dir", o.storageDataDir, "--mode", "storage"])}`,
        "TimeoutStartSec=infinity",
      ],
      Install: ["WantedBy=multi-user.target"],
    });
    units.push({ name: "isoload-load.service", text: `${HEADER}\n${load}` });
  }
  return { units, files };
}

/** One Ignition 3.2 config holding the units (enabled) and files, as JSON text. */
export function renderIgnition(r: { units: Unit[]; files: ShippedFile[] }): string {
  const config = {
    ignition: { version: "3.2.0" },
    storage: {
      files: r.files.map((f) => ({
        path: f.path,
        mode: f.mode,
        overwrite: true,
        contents: { source: `data:,${encodeURIComponent(f.text)}` },
      })),
    },
    systemd: { units: r.units.map((u) => ({ name: u.name, enabled: true, contents: u.text })) },
  };
  return JSON.stringify(config, null, 2) + "\n";
}
