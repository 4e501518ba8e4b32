/**
 * A binary heap of (primary, secondary) number pairs: primary ascending ('min') or descending
 * ('max'), ties to the smaller secondary. BPE encoding takes the lowest merge rank at the leftmost
 * position; BPE training takes the highest pair count with the smallest pair key. Pairs are stored
 * as float64, exact for the integers both use (pair keys reach 2^42).
 */
export class PairHeap {
  private primaries: Float64Array;
  private secondaries: Float64Array;
  /** +1 for a min-heap, -1 for a max-heap: primary * sign is what comes first ascending */
  private readonly sign: number;
  size = 0;

  constructor(order: 'min' | 'max', capacity = 64) {
    this.sign = order === 'min' ? 1 : -1;
    this.primaries = new Float64Array(Math.max(1, capacity));
    this.secondaries = new Float64Array(Math.max(1, capacity));
  }

  topPrimary(): number {
    return this.primaries[0];
  }

  topSecondary(): number {
    return this.secondaries[0];
  }

  push(primary: number, secondary: number): void {
    if (this.size === this.primaries.length) this.grow();
    let i = this.size++;
    this.primaries[i] = primary;
    this.secondaries[i] = secondary;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): void {
    this.size--;
    this.swap(0, this.size);
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < this.size && this.before(l, best)) best = l;
      if (r < this.size && this.before(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
  }

  private before(i: number, j: number): boolean {
    const pi = this.primaries[i] * this.sign;
    const pj = this.primaries[j] * this.sign;
    return pi < pj || (pi === pj && this.secondaries[i] < this.secondaries[j]);
  }

  private swap(i: number, j: number): void {
    const p = this.primaries[i];
    this.primaries[i] = this.primaries[j];
    this.primaries[j] = p;
    const s = this.secondaries[i];
    this.secondaries[i] = this.secondaries[j];
    this.secondaries[j] = s;
  }

  private grow(): void {
    const primaries = new Float64Array(2 * this.primaries.length);
    const secondaries = new Float64Array(2 * this.secondaries.length);
    primaries.set(this.primaries);
    secondaries.set(this.secondaries);
    this.primaries = primaries;
    this.secondaries = secondaries;
  }
}
