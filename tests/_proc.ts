/** Watching another process from outside through /proc (Linux). */

/**
 * How far process `pid` has read the file at `path` (the offset of its open
 * file description), or undefined when it has no such file open (yet, or any more).
 */
export async function readPosition(pid: number, path: string): Promise<number | undefined> {
  try {
    for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
      if ((await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "")) !== path) continue;
      return Number(/pos:\s*(\d+)/.exec(await Deno.readTextFile(`/proc/${pid}/fdinfo/${fd.name}`))?.[1] ?? 0);
    }
  } catch { /* the process is starting or gone */ }
  return undefined;
}
