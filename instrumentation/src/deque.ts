/**
 * A double-ended queue on a growable ring buffer: push and pop at either end in O(1)
 * (amortized over growth), indexed reads in O(1). The delivery queue uses it so that a full
 * queue evicting its oldest record costs the same at 10 records as at 100,000 (an array's
 * `shift`/`splice(0, 1)` moves every other element).
 *
 * `removeAt(i)` moves the shorter side of the ring, so removing near either end is cheap;
 * `removeIndices` removes many sorted indices in one pass over the prefix they span.
 */
export class Deque<T> {
  private buf: (T | undefined)[];
  private head = 0;
  private size = 0;
  private mask: number;

  constructor(initialCapacity = 16) {
    let cap = 16;
    while (cap < initialCapacity) cap *= 2;
    this.buf = new Array<T | undefined>(cap);
    this.mask = cap - 1;
  }

  get length(): number {
    return this.size;
  }

  /** Current ring capacity (a power of two). */
  get capacity(): number {
    return this.buf.length;
  }

  private grow(): void {
    const old = this.buf;
    const cap = old.length * 2;
    const next = new Array<T | undefined>(cap);
    for (let i = 0; i < this.size; i++) next[i] = old[(this.head + i) & this.mask];
    this.buf = next;
    this.head = 0;
    this.mask = cap - 1;
  }

  push(value: T): void {
    if (this.size === this.buf.length) this.grow();
    this.buf[(this.head + this.size) & this.mask] = value;
    this.size++;
  }

  unshift(value: T): void {
    if (this.size === this.buf.length) this.grow();
    this.head = (this.head - 1) & this.mask;
    this.buf[this.head] = value;
    this.size++;
  }

  /** Puts `values` at the front, keeping their order (values[0] becomes the head). */
  unshiftAll(values: readonly T[]): void {
    for (let i = values.length - 1; i >= 0; i--) this.unshift(values[i]!);
  }

  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const value = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.size--;
    return value;
  }

  pop(): T | undefined {
    if (this.size === 0) return undefined;
    const idx = (this.head + this.size - 1) & this.mask;
    const value = this.buf[idx];
    this.buf[idx] = undefined;
    this.size--;
    return value;
  }

  peek(): T | undefined {
    return this.size === 0 ? undefined : this.buf[this.head];
  }

  at(index: number): T | undefined {
    if (index < 0 || index >= this.size) return undefined;
    return this.buf[(this.head + index) & this.mask];
  }

  /** Removes and returns the element at `index`, moving the shorter side of the ring. */
  removeAt(index: number): T | undefined {
    if (index < 0 || index >= this.size) return undefined;
    const m = this.mask;
    const value = this.buf[(this.head + index) & m];
    if (index < this.size - 1 - index) {
      for (let i = index; i > 0; i--) this.buf[(this.head + i) & m] = this.buf[(this.head + i - 1) & m];
      this.buf[this.head] = undefined;
      this.head = (this.head + 1) & m;
    } else {
      for (let i = index; i < this.size - 1; i++) this.buf[(this.head + i) & m] = this.buf[(this.head + i + 1) & m];
      this.buf[(this.head + this.size - 1) & m] = undefined;
    }
    this.size--;
    return value;
  }

  /**
   * Removes the elements at the given indices (ascending, distinct), keeping the others in
   * order. Costs O(last index): the prefix up to it is compacted toward the tail.
   */
  removeIndices(indices: readonly number[]): void {
    const k = indices.length;
    if (k === 0) return;
    const m = this.mask;
    const last = indices[k - 1]!;
    if (last >= this.size) throw new RangeError(`index ${last} out of range (length ${this.size})`);
    // walk the prefix [0, last] backwards, moving survivors toward `last`
    let write = last;
    let r = k - 1;
    for (let read = last; read >= 0; read--) {
      if (r >= 0 && indices[r] === read) {
        r--;
        continue;
      }
      if (write !== read) this.buf[(this.head + write) & m] = this.buf[(this.head + read) & m];
      write--;
    }
    for (let i = 0; i < k; i++) this.buf[(this.head + i) & m] = undefined;
    this.head = (this.head + k) & m;
    this.size -= k;
  }

  /** Index of the first element (from the head) matching `pred`, scanning at most `limit`. */
  findIndex(pred: (value: T) => boolean, limit = Infinity): number {
    const n = Math.min(this.size, limit);
    for (let i = 0; i < n; i++) if (pred(this.buf[(this.head + i) & this.mask] as T)) return i;
    return -1;
  }

  clear(): void {
    this.buf = new Array<T | undefined>(16);
    this.mask = 15;
    this.head = 0;
    this.size = 0;
  }

  toArray(): T[] {
    const out = new Array<T>(this.size);
    for (let i = 0; i < this.size; i++) out[i] = this.buf[(this.head + i) & this.mask] as T;
    return out;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.size; i++) yield this.buf[(this.head + i) & this.mask] as T;
  }
}
