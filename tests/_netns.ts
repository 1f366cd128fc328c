/** Two network namespaces joined by a veth pair: host0 and a node, reachable only from each other. */
import { tool } from "./_helpers.ts";

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
