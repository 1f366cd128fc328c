/**
 * The systemd units a control-plane node of the installed cluster runs:
 * `isoload-binary.service` (oneshot) puts the isoload binary on the disk, then
 * `isoload-registry.service` (Type=notify) serves the images at 22625, both
 * ordered before everything that pulls on the installed OS's boot — the
 * machine-config daemon's first-boot pull and rebase, CRI-O and kubelet.
 * Pure renderer.
 */
import { execArg, type Unit } from "./units.ts";

/**
 * What pulls images on an installed node's boot: `machine-config-daemon-pull`
 * pulls the MCO image with podman and `machine-config-daemon-firstboot`
 * rebases to the release's OS image, both before CRI-O and kubelet (MCO
 * templates/common/_base/units/).
 */
export const INSTALLED_BEFORE = [
  "machine-config-daemon-pull.service",
  "machine-config-daemon-firstboot.service",
  "crio.service",
  "kubelet.service",
];

const HEADER = "# Written by isoload machine-configs: regenerate rather than edit.";

/** The two units, calling the boot script at `script`. */
export function renderInstalledUnits(o: { script: string; before: string[] }): Unit[] {
  const before = `Before=${o.before.join(" ")}`;
  const binary = [
    HEADER,
    "[Unit]",
    "Description=isoload: put the isoload binary on this node's disk (from the ISO, else a peer), checked by sha256",
    // Peers are reached over the network; the ISO path needs none but waiting costs nothing here.
    "Wants=network-online.target",
    "After=network-online.target",
    before,
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=${execArg(o.script)} binary`,
    // The script tries ten rounds, 10 s apart; each download is bounded by curl's --max-time.
    "TimeoutStartSec=30min",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
  const registry = [
    HEADER,
    "[Unit]",
    "Description=isoload: read-only registry of the install images at 22625 (this node's disk, filled from the ISO in place when attached, else from peers)",
    "Requires=isoload-binary.service",
    "After=isoload-binary.service network-online.target",
    "Wants=network-online.target",
    before,
    "",
    "[Service]",
    "Type=notify",
    // The script execs isoload, which may hand READY=1 to systemd-notify: accept it from any process of the unit.
    "NotifyAccess=all",
    `ExecStart=${execArg(o.script)} serve`,
    "Restart=on-failure",
    "RestartSec=5s",
    "TimeoutStartSec=10min",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
  return [{ name: "isoload-binary.service", text: binary }, { name: "isoload-registry.service", text: registry }];
}
