import assert from "node:assert/strict";
import { copyNow, renderStatus, type StatusReport } from "./status.ts";

type Serving = NonNullable<NonNullable<StatusReport["registry"]>["serving"]>;

const SERVING: Serving = {
  listen: "0.0.0.0:22625",
  url: "http://127.0.0.1:22625/v2/",
  tls: false,
  server: "builtin",
  pid: 42,
  started: "t0",
  running: true,
  answering: true,
  origin: { inPlace: ["/iso/images.tar"], dataDir: "/var/lib/isoload", filling: true },
};

/** The text status prints for a registry tree (unfinished unless said) served as `serving`. */
function render(serving: Serving, complete = false): string {
  return renderStatus({
    dataDir: "/var/lib/isoload",
    registry: { complete, images: 0, blobs: 0, bytes: 0, sources: [], files: {}, serving },
  });
}

Deno.test("renderStatus() says the copy into the disk goes on only while it does", () => {
  const copying = render({ ...SERVING, copy: { state: "copying", at: "t1" } });
  assert.match(copying, /^Registry tree: +being filled by the running serve:/m);
  assert.match(
    copying,
    /^Images from: +this node's disk \(\/var\/lib\/isoload\), then the archive in place \(\/iso\/images\.tar, being copied to the disk\)$/m,
  );
  assert.match(copying, /^Disk copy: +copying in the background \(since t1\)$/m);

  // Killed mid-copy: the state file still says copying, but nothing copies any more.
  const killed = render({ ...SERVING, running: false, answering: false, copy: { state: "copying", at: "t1" } });
  assert.match(killed, /^Registry tree: +UNFINISHED \(run isoload load again\)/m);
  assert.match(killed, /^Images from: .*\(\/iso\/images\.tar\)$/m);
  assert.match(killed, /^Disk copy: +interrupted: the serve stopped before the copy finished \(copying since t1\)$/m);

  // The ISO went away: the serve stops so that a restart serves from what is left.
  const stopping = render({ ...SERVING, copy: { state: "stopped", at: "t2", error: "Cannot read /iso/images.tar: I/O error" } });
  assert.match(stopping, /^Disk copy: +STOPPED \(t2\): Cannot read \/iso\/images\.tar: I\/O error; the serve is stopping$/m);

  const peers = render(
    { ...SERVING, origin: { dataDir: "/d", peers: ["https://a:22625"], filling: true }, copy: { state: "complete", at: "t3" } },
    true,
  );
  assert.match(peers, /^Registry tree: +complete:/m);
  assert.match(peers, /^Images from: +this node's disk \(\/d\), then peers https:\/\/a:22625 \(copied to the disk\)$/m);
  assert.match(peers, /^Disk copy: +complete \(t3\): every blob is served from this node's disk$/m);

  // A serve that copies nothing (a complete DIR, or serve --peer --no-fill) has no copy line.
  const none = render({ ...SERVING, origin: { dataDir: "/d", peers: ["https://a:22625"], filling: false } });
  assert.match(none, /then peers https:\/\/a:22625 \(as asked\)$/m);
  assert.doesNotMatch(none, /Disk copy/);
});

Deno.test("copyNow(): a serve gone mid-copy is interrupted, unless the records already say the tree is complete", () => {
  const copying = { state: "copying" as const, at: "t0", stillServing: "from the archive in place" };
  assert.deepEqual(copyNow(copying, true, false), copying);
  assert.deepEqual(copyNow(copying, false, false), { state: "interrupted", at: "t0" });
  // Killed between writing the records and recording the copy complete: the copy did finish.
  assert.deepEqual(copyNow(copying, false, true), { state: "complete", at: "t0" });
  assert.deepEqual(copyNow(copying, true, true), { state: "complete", at: "t0" });
  const stopped = { state: "stopped" as const, at: "t1", error: "Cannot load: no room", stillServing: "from the archive in place" };
  assert.deepEqual(copyNow(stopped, false, false), { state: "stopped", at: "t1", error: "Cannot load: no room" });
});
