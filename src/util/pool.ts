/** Runs work on a bounded number of items at once. */

/** The outcome of one item: its value, or the error it threw. */
export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

/**
 * Calls `fn` for every item with at most `jobs` calls in flight, and returns
 * every outcome in item order. One failure does not stop the others.
 */
export async function runPool<T, R>(items: T[], jobs: number, fn: (item: T, index: number) => Promise<R>): Promise<Settled<R>[]> {
  const out: Settled<R>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = { ok: true, value: await fn(items[i], i) };
      } catch (error) {
        out[i] = { ok: false, error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, worker));
  return out;
}
