/** A minimal ustar writer for hostile-archive tests: it writes whatever it is told. */

/** One entry to write. */
export interface RawEntry {
  name: string;
  data?: Uint8Array | string;
  /** ustar typeflag: "0" file, "1" hard link, "2" symlink, "5" dir, "6" FIFO, "3" char device. */
  type?: string;
  linkname?: string;
  /** Size to record in the header, when it should lie about the data. */
  claimedSize?: number;
  /** PAX extended header records written before the entry (path, linkpath, size, …). */
  pax?: Record<string, string>;
  /** Write the name as a GNU long-name ('L') entry before the header. */
  gnuLongName?: boolean;
}

/** One PAX record: "<len> key=value\n", where len counts itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
}

const enc = new TextEncoder();

function field(h: Uint8Array, off: number, len: number, text: string): void {
  h.set(enc.encode(text).subarray(0, len), off);
}

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, "0") + "\0";
}

/** One 512-byte header with a correct checksum. */
export function header(e: RawEntry, size: number): Uint8Array {
  const h = new Uint8Array(512);
  field(h, 0, 100, e.name);
  field(h, 100, 8, octal(0o644, 8));
  field(h, 108, 8, octal(0, 8));
  field(h, 116, 8, octal(0, 8));
  field(h, 124, 12, octal(e.claimedSize ?? size, 12));
  field(h, 136, 12, octal(0, 12));
  field(h, 156, 1, e.type ?? "0");
  field(h, 157, 100, e.linkname ?? "");
  field(h, 257, 6, "ustar\0");
  field(h, 263, 2, "00");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  field(h, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

/** A whole archive, with its end-of-archive blocks. */
export function makeTar(entries: RawEntry[], { end = true } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const put = (e: RawEntry, data: Uint8Array) => {
    parts.push(header(e, data.length), data, new Uint8Array((512 - (data.length % 512)) % 512));
  };
  for (const e of entries) {
    const data = typeof e.data === "string" ? enc.encode(e.data) : e.data ?? new Uint8Array();
    if (e.pax) {
      put({ name: "PaxHeader", type: "x" }, enc.encode(Object.entries(e.pax).map(([k, v]) => paxRecord(k, v)).join("")));
    }
    if (e.gnuLongName) put({ name: "././@LongLink", type: "L" }, enc.encode(e.name + "\0"));
    put(e.gnuLongName ? { ...e, name: e.name.slice(0, 99) } : e, data);
  }
  if (end) parts.push(new Uint8Array(1024));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Reads an OCI layout directory into tar entries (sorted), to be altered by a test. */
export async function layoutEntries(dir: string): Promise<RawEntry[]> {
  const out: RawEntry[] = [];
  for (const name of ["oci-layout", "index.json"]) out.push({ name, data: await Deno.readFile(`${dir}/${name}`) });
  const blobs: string[] = [];
  for await (const e of Deno.readDir(`${dir}/blobs/sha256`)) blobs.push(e.name);
  for (const b of blobs.sort()) out.push({ name: `blobs/sha256/${b}`, data: await Deno.readFile(`${dir}/blobs/sha256/${b}`) });
  return out;
}
