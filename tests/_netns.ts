/** Two network namespaces joined by a veth pair: host0 and a node, reachable only from each other. */
import { tool } from "./_process.ts";

/** The pair, and how to take it down. */
export interface NetPair {
  host0: string;
  node: string;
  host0Ip: string;
  nodeIp: string;
  remove(): Promise<void>;
}

/** Creates the namespaces (root and CAP_NET_ADMIN needed: the tests run as root). */
export async function makeNetPair(): Promise<NetPair> {
  const id = crypto.getRandomValues(new Uint8Array(3));
  const tag = Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("");
  const host0 = `iso-h0-${tag}`;
  const node = `iso-n1-${tag}`;
  const net = `10.${200 + (id[0] % 50)}.${id[1]}`;
  const pair: NetPair = {
    host0,
    node,
    host0Ip: `${net}.1`,
    nodeIp: `${net}.2`,
    async remove() {
      for (const ns of [host0, node]) await tool("ip", ["netns", "del", ns]).catch(() => {});
    },
  };
  try {
    await tool("ip", ["netns", "add", host0]);
    await tool("ip", ["netns", "add", node]);
    await tool("ip", ["link", "add", `vh${tag}`, "netns", host0, "type", "veth", "peer", "name", `vn${tag}`, "netns", node]);
    for (const [ns, dev, ip] of [[host0, `vh${tag}`, pair.host0Ip], [node, `vn${tag}`, pair.nodeIp]]) {
      await tool("ip", ["-n", ns, "addr", "add", `${ip}/24`, "dev", dev]);
      await tool("ip", ["-n", ns, "link", "set", dev, "up"]);
      await tool("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
  } catch (e) {
    await pair.remove();
    throw new Error(`Cannot create network namespaces for the test (needs root and ip from iproute2): ${(e as Error).message}`);
  }
  return pair;
}

/** Namespaces on one bridge: every one reaches every other, and nothing outside. */
export interface NetMesh {
  /** Namespace name and address of each host, in the order asked for. */
  hosts: { name: string; ns: string; ip: string }[];
  remove(): Promise<void>;
}

/**
 * Creates one namespace per name plus one holding a bridge, each joined to
 * the bridge by a veth pair, with 10.x addresses on one /24 (inside the
 * namespaces only). Root and CAP_NET_ADMIN needed.
 */
export async function makeNetMesh(names: string[]): Promise<NetMesh> {
  const id = crypto.getRandomValues(new Uint8Array(3));
  const tag = Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("");
  const net = `10.${200 + (id[0] % 50)}.${id[1]}`;
  const bridge = `iso-br-${tag}`;
  const hosts = names.map((name, i) => ({ name, ns: `iso-${i}${name.slice(0, 4)}-${tag}`, ip: `${net}.${i + 1}` }));
  const mesh: NetMesh = {
    hosts,
    async remove() {
      for (const ns of [bridge, ...hosts.map((h) => h.ns)]) await tool("ip", ["netns", "del", ns]).catch(() => {});
    },
  };
  try {
    await tool("ip", ["netns", "add", bridge]);
    await tool("ip", ["-n", bridge, "link", "add", "br0", "type", "bridge"]);
    await tool("ip", ["-n", bridge, "link", "set", "br0", "up"]);
    for (const [i, h] of hosts.entries()) {
      await tool("ip", ["netns", "add", h.ns]);
      await tool("ip", ["link", "add", `vm${i}${tag}`, "netns", h.ns, "type", "veth", "peer", "name", `vb${i}${tag}`, "netns", bridge]);
      await tool("ip", ["-n", bridge, "link", "set", `vb${i}${tag}`, "master", "br0", "up"]);
      await tool("ip", ["-n", h.ns, "addr", "add", `${h.ip}/24`, "dev", `vm${i}${tag}`]);
      await tool("ip", ["-n", h.ns, "link", "set", `vm${i}${tag}`, "up"]);
      await tool("ip", ["-n", h.ns, "link", "set", "lo", "up"]);
    }
  } catch (e) {
    await mesh.remove();
    throw new Error(`Cannot create network namespaces for the test (needs root and ip from iproute2): ${(e as Error).message}`);
  }
  return mesh;
}
