/**
 * A file written around the page cache (`O_DIRECT`), through libc by FFI:
 * Deno opens no file so. A copy from peers writes its blobs this way: the
 * bytes go from isoload's buffer to the device, with no copy into the page
 * cache and no pages to allocate for it, and the images a node replicates do
 * not push out of memory what the node runs.
 *
 * Where libc cannot be loaded (FFI not allowed, another C library, a libc
 * elsewhere) or the filesystem refuses `O_DIRECT`, {@link DirectFile.create}
 * gives undefined and the caller writes through the page cache as before. A
 * write the kernel refuses part-way (a full disk) is done again through the
 * page cache, so its error reads as any other write's.
 */
import { writeAll } from "./atomic_write.ts";

/** Buffer addresses, file offsets and lengths of direct writes are multiples of this (the largest logical block size in use). */
export const DIRECT_ALIGN = 4096;

/**
 * Where libc is looked for: RHEL, RHCOS and Fedora; Debian and Ubuntu. `deno.json`'s compile tasks allow FFI to
 * exactly these paths and nothing else.
 */
export const LIBC_PATHS = [
  "/usr/lib64/libc.so.6",
  `/lib/${Deno.build.arch}-linux-gnu/libc.so.6`,
  `/usr/lib/${Deno.build.arch}-linux-gnu/libc.so.6`,
];

const O_WRONLY = 0o1;
const O_CLOEXEC = 0o2000000;
/** Differs by architecture (asm-generic's value on x86_64, arm64's own). */
const O_DIRECT = Deno.build.arch === "aarch64" ? 0o200000 : 0o40000;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // Through a thread of its own (a promise): a write waits for the device.
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize", nonblocking: true },
  close: { parameters: ["i32"], result: "i32" },
  // memcpy of 0 bytes returns its destination: a buffer's address without the unscoped FFI permission that
  // Deno.UnsafePointer needs.
  memcpy: { parameters: ["buffer", "buffer", "usize"], result: "usize" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let libc: Libc | null | undefined;

/** libc's functions, or null where it cannot be loaded (tried once). */
function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (Deno.build.os !== "linux") return libc;
  for (const path of LIBC_PATHS) {
    try {
      Deno.statSync(path);
    } catch {
      continue;
    }
    // Asked first: a `deno run` in a terminal would otherwise stop the copy to prompt for FFI.
    if (Deno.permissions.querySync({ name: "ffi", path }).state !== "granted") break;
    try {
      libc = Deno.dlopen(path, SYMBOLS).symbols;
    } catch { /* not loadable: write through the page cache */ }
    break;
  }
  return libc;
}

/**
 * A view of `size` bytes of `buf` starting at an address aligned for direct writes, or undefined without libc.
 * `buf` must be at least `size + DIRECT_ALIGN` bytes; its address does not change (V8 does not move array buffers'
 * memory, and a transfer to a worker and back hands the same memory).
 */
export function alignedView(buf: ArrayBuffer, size: number): Uint8Array | undefined {
  const lib = loadLibc();
  if (!lib) return undefined;
  const whole = new Uint8Array(buf);
  const address = BigInt(lib.memcpy(whole, whole, 0n));
  const align = BigInt(DIRECT_ALIGN);
  return new Uint8Array(buf, Number((align - address % align) % align), size);
}

/**
 * A new file written with `O_DIRECT` from the start, each write after the last. Every write but the last must be a
 * multiple of {@link DIRECT_ALIGN} bytes, from a view {@link alignedView} gave; the last is padded, and
 * {@link DirectFile.finish} cuts the file to its size.
 */
export class DirectFile {
  #fd: number;
  #at = 0;
  #direct = true;
  /** The page-cache file that took over once a direct write was refused. */
  #buffered: Deno.FsFile | undefined;

  private constructor(readonly path: string, fd: number) {
    this.#fd = fd;
  }

  /** Creates (or truncates) `path` and opens it for direct writes; undefined where that cannot be done here. */
  static create(path: string): DirectFile | undefined {
    const lib = loadLibc();
    if (!lib) return undefined;
    Deno.writeFileSync(path, new Uint8Array());
    // No O_CREAT, so no mode argument for open's variadic tail: Deno made the file.
    const fd = lib.open(new TextEncoder().encode(`${path}\0`), O_WRONLY | O_DIRECT | O_CLOEXEC);
    return fd < 0 ? undefined : new DirectFile(path, fd);
  }

  /** False once a write went through the page cache (and every write after it does). */
  get direct(): boolean {
    return this.#direct;
  }

  /** Writes the first `n` bytes of `view` at the end of what is written. */
  async write(view: Uint8Array, n: number): Promise<void> {
    const at = this.#at;
    this.#at += n;
    if (this.#direct) {
      const len = Math.ceil(n / DIRECT_ALIGN) * DIRECT_ALIGN;
      if (at % DIRECT_ALIGN === 0 && len <= view.length) {
        const wrote = Number(await loadLibc()!.pwrite(this.#fd, view.subarray(0, len), BigInt(len), BigInt(at)));
        if (wrote === len) return;
      }
      // Refused (no errno crosses the FFI call's thread), short, or unaligned: from here through the page cache, where
      // a full disk or an I/O error is reported as such.
      this.#direct = false;
    }
    this.#buffered ??= await Deno.open(this.path, { write: true });
    await this.#buffered.seek(at, Deno.SeekMode.Start);
    await writeAll(this.#buffered, view.subarray(0, n));
  }

  /** Closes the file, cut to the `size` bytes written (the last direct write was padded). */
  async finish(size: number): Promise<void> {
    this.abandon();
    await Deno.truncate(this.path, size);
  }

  /** Closes the file as it is (the copy failed; the caller removes it). */
  abandon(): void {
    if (this.#fd >= 0) loadLibc()!.close(this.#fd);
    this.#fd = -1;
    try {
      this.#buffered?.close();
    } catch { /* closed */ }
    this.#buffered = undefined;
  }
}
