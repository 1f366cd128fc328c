/**
 * The systemd units that run isoload at boot, and the Ignition 3 fragment
 * carrying them: pure renderers, so the same options give the same bytes.
 *
 * host0, registry mode: isoload-load.service (oneshot) then
 * isoload-registry.service (Type=notify, isoload serve), both before the
 * services that pull images. host0, storage mode: the load unit only, before
 * crio. Other nodes: isoload-registries-conf.service writes registries.conf
 * (and the CA) pointing at host0, then waits until host0 serves everything.
 */
import { dirname } from "node:path";

/** Services that pull images on an agent-based install: held back until the images are there. */
export const DEFAULT_BEFORE = [
  "crio.service",
  "kubelet.service",
  "release-image.service",
  "agent-interactive-console.service",
  "agent.service",
  "assisted-service-pod.service",
];

/** Where a node keeps the image list host0 exported. */
export const NODE_EXPECT_PATH = "/etc/isoload/images.json";

/** Options of `isoload units`. */
export interface UnitsOptions {
  role: "host0" | "node";
  mode: "registry" | "storage";
  mirror: string;
  /** The archive on the mounted ISO (host0). */
  source: string;
  dataDir: string;
  before: string[];
  /** Path of the isoload binary on the hosts. */
  binary: string;
  registryCommand?: string;
  registryImage?: string;
  tls: boolean;
  hostnames: string[];
  ips: string[];
  certsDir: string;
  /** Node: the exported image list to ship (its text), when known. */
  expectText?: string;
  waitTimeout: string;
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

/** The units (and files) for the options. */
export function renderUnits(o: UnitsOptions): { units: Unit[]; files: ShippedFile[] } {
  const before = `Before=${o.before.join(" ")}`;
  if (o.role === "node") {
    const common = ["--mirror", o.mirror, "--expect", NODE_EXPECT_PATH, "--certs-dir", o.certsDir];
    const text = unit({
      Unit: [
        `Description=isoload: pull the install images from host0's registry at ${o.mirror}`,
        "Wants=network-online.target",
        "After=network-online.target",
        `ConditionPathExists=${NODE_EXPECT_PATH}`,
        before,
      ],
      Service: [
        "Type=oneshot",
        "RemainAfterExit=yes",
        `ExecStart=${exec([o.binary, "registries-conf", ...common])}`,
        `ExecStart=${exec([o.binary, "wait", ...common, "--timeout", o.waitTimeout])}`,
        // host0 may still be loading 20 GB: the wait's own --timeout bounds this unit.
        "TimeoutStartSec=infinity",
      ],
      Install: ["WantedBy=multi-user.target"],
    });
    const files = o.expectText === undefined ? [] : [{ path: NODE_EXPECT_PATH, mode: 0o644, text: o.expectText }];
    return { units: [{ name: "isoload-registries-conf.service", text: `${HEADER}\n${text}` }], files };
  }

  const loadArgs = [o.binary, "load", o.source, "--data-dir", o.dataDir];
  if (o.mode === "storage") loadArgs.push("--mode", "storage");
  else {
    loadArgs.push("--mirror", o.mirror);
    if (o.tls) loadArgs.push("--tls", "--certs-dir", o.certsDir);
  }
  const load = unit({
    Unit: [
      `Description=isoload: make the install images from ${o.source} available${o.mode === "storage" ? " in containers-storage" : ""}`,
      "After=local-fs.target",
      `RequiresMountsFor=${dirname(o.source)} ${o.dataDir}`,
      o.mode === "storage" ? "Before=crio.service kubelet.service" : before,
    ],
    Service: [
      "Type=oneshot",
      "RemainAfterExit=yes",
      `ExecStart=${exec(loadArgs)}`,
      // Reading and verifying ~20 GB takes minutes; a re-run after a reboot takes a second.
      "TimeoutStartSec=infinity",
    ],
    Install: ["WantedBy=multi-user.target"],
  });
  const units: Unit[] = [{ name: "isoload-load.service", text: `${HEADER}\n${load}` }];
  if (o.mode === "registry") {
    const listen = `0.0.0.0:${o.mirror.slice(o.mirror.lastIndexOf(":") + 1)}`;
    const serveArgs = [o.binary, "serve", "--data-dir", o.dataDir, "--listen", listen];
    // Without a registry named, isoload serves with its own built-in registry: the ISO needs nothing else.
    if (o.registryImage) serveArgs.push("--registry-image", o.registryImage);
    else if (o.registryCommand) serveArgs.push("--registry-command", o.registryCommand);
    if (o.tls) {
      serveArgs.push("--tls", ...o.hostnames.flatMap((h) => ["--hostname", h]), ...o.ips.flatMap((i) => ["--ip", i]));
    }
    const serve = unit({
      Unit: [
        `Description=isoload: read-only registry for the install images at ${o.mirror}`,
        "Requires=isoload-load.service",
        "After=isoload-load.service network-online.target",
        "Wants=network-online.target",
        before,
      ],
      Service: [
        "Type=notify",
        `ExecStart=${exec(serveArgs)}`,
        "Restart=on-failure",
        "RestartSec=2s",
        "TimeoutStartSec=10min",
      ],
      Install: ["WantedBy=multi-user.target"],
    });
    units.push({ name: "isoload-registry.service", text: `${HEADER}\n${serve}` });
  }
  return { units, files: [] };
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
