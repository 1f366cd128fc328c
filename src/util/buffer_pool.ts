/**
 * A fixed set of equal buffers handed out and given back, so streaming many
 * gigabytes allocates nothing per chunk and peak memory is the pool's size.
 */

/** Buffers of `size` bytes, at most `count` of them out at once. */
export class BufferPool {
  readonly #free: ArrayBuffer[] = [];
  readonly #waiting: ((b: ArrayBuffer) => void)[] = [];

  constructor(readonly count: number, readonly size: number) {
    for (let i = 0; i < count; i++) this.#free.push(new ArrayBuffer(size));
  }

  /** A free buffer, once one is free. */
  take(): Promise<ArrayBuffer> {
    const b = this.#free.pop();
    if (b) return Promise.resolve(b);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Gives a buffer back (the same memory, possibly after a round trip through a worker). */
  give(b: ArrayBuffer): void {
    if (b.byteLength !== this.size) throw new RangeError(`a ${b.byteLength}-byte buffer is not one of this pool's`);
    const w = this.#waiting.shift();
    if (w) w(b);
    else this.#free.push(b);
  }

  /** Buffers not handed out. */
  get available(): number {
    return this.#free.length;
  }
}
