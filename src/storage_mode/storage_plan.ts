/**
 * Storage mode, planned without touching anything: which images can be copied
 * into containers-storage, under which names, what to pin, and which images
 * fail and why. Pure, so the rules are tested without skopeo.
 */
import { type LoadedImage, pullReference } from "../image/loaded_image.ts";
import type { LayoutPlan } from "../store/layout_plan.ts";
import { type ParsedManifest, type Platform, platformString } from "../image/manifest.ts";

/** One image to put in containers-storage. */
export interface StorageCopy {
  image: LoadedImage;
  /** `source@digest`: how logs and failures name it. */
  ref: string;
  /** References to create, the digest reference first, then one per tag. */
  targets: string[];
  /** Manifest digests a present target may resolve to (the digest, and for an index its host child). */
  accepts: string[];
  /** References to pin against kubelet image GC. */
  pins: string[];
}

/** An image that cannot be copied, and why. */
export interface StorageFailure {
  ref: string;
  reason: string;
  /** A blob it needs is not in the archive at all (not corrupt): an earlier archive of a series may hold it. */
  absent?: true;
}

/** The plan: copies to run, failures known before running anything. */
export interface StoragePlan {
  copies: StorageCopy[];
  failures: StorageFailure[];
}

/** What skopeo picks from an index on this host, as OCI spells it. */
export function hostPlatform(arch: string = Deno.build.arch): Platform {
  const map: Record<string, Platform> = {
    x86_64: { os: "linux", architecture: "amd64" },
    aarch64: { os: "linux", architecture: "arm64" },
  };
  return map[arch] ?? { os: "linux", architecture: arch };
}

function matches(p: Platform | undefined, host: Platform): boolean {
  return !!p && p.os === host.os && p.architecture === host.architecture &&
    (!host.variant || !p.variant || p.variant === host.variant);
}

/** Why a blob is absent: the pass's corruption message, or that the source lacks it. */
function absence(what: string, digest: string, corrupt: ReadonlyMap<string, string>): Omit<StorageFailure, "ref"> {
  const bad = corrupt.get(digest);
  return bad !== undefined ? { reason: bad } : { reason: `its ${what} ${digest} is not in the archive`, absent: true };
}

/**
 * Plans storage mode from a layout plan: images with absent blobs fail, an
 * index fails when it has no manifest for `platform` in the archive, every
 * other image is copied under its source name by digest and by each tag.
 */
export function planStorage(
  layout: Pick<LayoutPlan, "images" | "missing">,
  manifests: ReadonlyMap<string, ParsedManifest>,
  corrupt: ReadonlyMap<string, string>,
  platform: Platform,
): StoragePlan {
  const failures = new Map<string, Omit<StorageFailure, "ref">>();
  for (const m of layout.missing) {
    if (!failures.has(m.ref)) failures.set(m.ref, absence(m.what, m.digest, corrupt));
  }
  const copies: StorageCopy[] = [];
  for (const image of layout.images) {
    const ref = pullReference(image);
    if (failures.has(ref)) continue;
    const accepts = [image.digest];
    const top = manifests.get(image.digest);
    if (top?.kind === "index") {
      const child = top.children.find((c) => matches(c.platform, platform));
      if (!child) {
        const has = top.children.map((c) => platformString(c.platform)).join(", ");
        failures.set(ref, { reason: `its index has no ${platformString(platform)} manifest (it has ${has || "none"})` });
        continue;
      }
      if (!image.children?.includes(child.digest)) {
        failures.set(ref, absence(`${platformString(platform)} manifest`, child.digest, corrupt));
        continue;
      }
      accepts.push(child.digest);
    }
    const tagged = image.tags.map((t) => `${image.source}:${t}`);
    copies.push({
      image,
      ref,
      targets: [ref, ...tagged],
      accepts,
      pins: [ref, ...accepts.slice(1).map((d) => `${image.source}@${d}`), ...tagged],
    });
  }
  return {
    copies,
    failures: [...failures].map(([ref, f]) => ({ ref, ...f })).sort((a, b) => (a.ref < b.ref ? -1 : 1)),
  };
}
