/**
 * containers-storage (the store CRI-O and podman use), reached through
 * skopeo: whether a reference is there, and copies into it from a `dir:` image.
 */
import { atomicWrite } from "../util/atomic_write.ts";
import type { DataDirPaths } from "../store/paths.ts";
import { digestOf } from "../image/digest.ts";
import { EnvironmentError } from "../util/errors.ts";
import { lastLine, runTool } from "../util/tools.ts";

/**
 * A signature policy that accepts only local `dir:` images. isoload verified
 * every blob's digest itself; the host's policy (which may reject by default)
 * is meant for registries, and `dir:` is the only transport read here.
 */
export const DIR_ONLY_POLICY = JSON.stringify(
  { default: [{ type: "reject" }], transports: { dir: { "": [{ type: "insecureAcceptAnything" }] } } },
  null,
  2,
) + "\n";

/** Writes the policy into the data directory's state and returns its path. */
export async function writeDirPolicy(paths: DataDirPaths): Promise<string> {
  await atomicWrite(paths.dirPolicy, DIR_ONLY_POLICY);
  return paths.dirPolicy;
}

/** The store, and how skopeo is told about it. */
export class ContainersStorage {
  /**
   * @param policy path of a signature policy (see writeDirPolicy)
   * @param storageConf a storage.conf to use instead of the host's (CONTAINERS_STORAGE_CONF)
   */
  constructor(readonly policy: string, readonly storageConf?: string, readonly signal?: AbortSignal) {}

  #env(): Record<string, string> | undefined {
    return this.storageConf ? { CONTAINERS_STORAGE_CONF: this.storageConf } : undefined;
  }

  /**
   * The digest of the manifest `ref` resolves to in the store, or undefined
   * when it does not resolve. (A tag may resolve to an older image: callers
   * compare the digest.)
   */
  async manifestDigest(ref: string): Promise<string | undefined> {
    const res = await runTool("skopeo", ["inspect", "--raw", `containers-storage:${ref}`], this.#env(), this.signal);
    return res.code === 0 ? digestOf(res.stdoutBytes) : undefined;
  }

  /** Copies the `dir:` image at `dir` (see exportDirImage) to `ref`. */
  async copyFromDir(dir: string, ref: string): Promise<void> {
    const res = await runTool(
      "skopeo",
      ["--policy", this.policy, "copy", "--quiet", `dir:${dir}`, `containers-storage:${ref}`],
      this.#env(),
      this.signal,
    );
    if (res.code !== 0) throw new EnvironmentError(`Cannot copy ${ref} into containers-storage: skopeo: ${lastLine(res.stderr)}`);
  }
}
