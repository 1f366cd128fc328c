/** systemd's readiness protocol: a datagram to $NOTIFY_SOCKET (sd_notify(3)). */
import { join } from "node:path";

/**
 * Sends a state string such as "READY=1" when NOTIFY_SOCKET is set; returns
 * false when there is nothing to tell or it could not be told.
 */
export async function sdNotify(state: string): Promise<boolean> {
  const target = Deno.env.get("NOTIFY_SOCKET");
  if (!target) return false;
  const listen = (Deno as unknown as { listenDatagram?: typeof Deno.listenDatagram }).listenDatagram;
  if (listen && target.startsWith("/")) {
    const dir = await Deno.makeTempDir({ prefix: "isoload-notify-" });
    const self = join(dir, "s");
    try {
      const sock = listen({ transport: "unixpacket", path: self });
      try {
        await sock.send(new TextEncoder().encode(state), { transport: "unixpacket", path: target });
        return true;
      } finally {
        sock.close();
      }
    } catch {
      // fall through to systemd-notify
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
  // Abstract sockets ("@…") and runtimes without datagram sockets: let systemd's tool say it.
  try {
    const res = await new Deno.Command("systemd-notify", { args: [state], stdout: "null", stderr: "null" }).output();
    return res.success;
  } catch {
    return false;
  }
}
