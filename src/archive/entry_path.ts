/** Archive member paths: normalised, and refused when they could escape the root. */
import { InputError } from "../util/errors.ts";

/**
 * Normalises an archive path ("./a//b/" → "a/b") and refuses absolute paths
 * and any ".." component, so no entry can name a file outside the root.
 */
export function safeEntryPath(name: string): string {
  if (name.includes("\0")) throw new InputError(`Cannot read archive: entry name ${JSON.stringify(name)} holds a NUL byte`);
  if (name.startsWith("/")) throw new InputError(`Cannot read archive: entry ${JSON.stringify(name)} has an absolute path`);
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new InputError(`Cannot read archive: entry ${JSON.stringify(name)} escapes the archive root with ".."`);
  return parts.join("/");
}

/**
 * Checks that a link entry stays inside the root. Symlink targets resolve
 * against the entry's directory; hard link targets against the root.
 */
export function checkLinkTarget(entryPath: string, target: string, kind: "symlink" | "hardlink"): void {
  const what = `${kind} ${JSON.stringify(entryPath)} -> ${JSON.stringify(target)}`;
  if (target.startsWith("/")) throw new InputError(`Cannot read archive: ${what} points outside the archive`);
  const base = kind === "symlink" ? entryPath.split("/").slice(0, -1) : [];
  for (const p of target.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (base.length === 0) throw new InputError(`Cannot read archive: ${what} points outside the archive`);
      base.pop();
    } else base.push(p);
  }
}
