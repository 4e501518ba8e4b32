/**
 * A small seeded PRNG (xoshiro128**) whose whole state can be saved and restored, so that a
 * checkpoint resumes the exact random stream. One instance per purpose (init, data order,
 * sampling), each seeded from the user's seed and a purpose tag.
 */
export class Rng {
  private s: Uint32Array;
  /** a cached second normal from Box-Muller, or null */
  private spareNormal: number | null = null;

  constructor(seed: number, stream = 0) {
    if (!Number.isInteger(seed)) throw new RangeError(`Rng: seed must be an integer, got ${String(seed)}`);
    if (!Number.isInteger(stream)) throw new RangeError(`Rng: stream must be an integer, got ${String(stream)}`);
    this.s = new Uint32Array(4);
    // splitmix32 expands (seed, stream) into a non-zero 128-bit state
    let x = (seed >>> 0) ^ Math.imul(stream >>> 0, 0x85ebca6b);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }

  /** uniform 32-bit unsigned integer */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** uniform in [0, 1) with 53 random bits */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** uniform integer in [0, n) without modulo bias */
  nextInt(n: number): number {
    if (!(n >= 1) || n > 0x100000000) throw new RangeError(`nextInt: n must be in [1, 2^32], got ${n}`);
    const limit = Math.floor(0x100000000 / n) * n;
    for (;;) {
      const r = this.nextU32();
      if (r < limit) return r % n;
    }
  }

  /** standard normal (Box-Muller) */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** in-place Fisher-Yates shuffle */
  shuffle<T>(arr: { length: number; [i: number]: T }): void {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = arr[i];
      arr[i] = arr[j];
      arr[j] = tmp;
    }
  }

  getState(): RngState {
    return { s: Array.from(this.s), spareNormal: this.spareNormal };
  }

  setState(state: RngState): void {
    if (!Array.isArray(state.s) || state.s.length !== 4) throw new TypeError('Rng state: expected s to be 4 uint32 words');
    this.s = Uint32Array.from(state.s);
    this.spareNormal = state.spareNormal ?? null;
  }
}

export interface RngState {
  s: number[];
  spareNormal: number | null;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Purpose tags for Rng streams: one stream per purpose, so they never disturb each other. */
export const RngStream = {
  init: 1,
  dataOrder: 2,
  sampling: 3,
  dropout: 4,
} as const;
