/**
 * Turns generated ids into text pieces through the tokenizer's stream decoder (whole characters
 * only), and cuts the text before the first stop string. Text that might be the start of a stop
 * string is held back until it is known not to be, so a streamed piece never shows part of one.
 */
import type { StreamDecoder, Tokenizer } from '../tokenizer/types.js';

export class TextTracker {
  private readonly decoder: StreamDecoder;
  private full = '';
  private emitted = 0;
  private readonly longestStop: number;
  /** true once a stop string was found (the text is then final) */
  stopped = false;

  constructor(
    tokenizer: Tokenizer,
    promptIds: readonly number[],
    private readonly stops: readonly string[],
  ) {
    this.decoder = tokenizer.createStreamDecoder();
    // the prompt may end inside a multi-byte character: let the decoder hold those bytes
    for (const id of promptIds) this.decoder.push(id);
    this.longestStop = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** the text so far (final once finished) */
  get text(): string {
    return this.full;
  }

  /** Add one generated id; returns the text that became safe to show. */
  push(id: number): string {
    if (this.stopped) return '';
    this.append(this.decoder.push(id));
    return this.release(false);
  }

  /** End of generation: flush the decoder and release everything left. */
  finish(): string {
    if (!this.stopped) this.append(this.decoder.flush());
    return this.release(true);
  }

  private append(piece: string): void {
    if (piece === '') return;
    const searchFrom = Math.max(0, this.full.length - this.longestStop + 1);
    this.full += piece;
    let cut = -1;
    for (const stop of this.stops) {
      const at = this.full.indexOf(stop, searchFrom);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.full = this.full.slice(0, cut);
      this.stopped = true;
    }
  }

  private release(all: boolean): string {
    const end = all || this.stopped ? this.full.length : this.full.length - this.heldBack();
    if (end <= this.emitted) return '';
    const piece = this.full.slice(this.emitted, end);
    this.emitted = end;
    return piece;
  }

  /** length of the longest suffix of the text that is a proper prefix of some stop string */
  private heldBack(): number {
    let held = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, this.full.length); k > held; k--) {
        if (this.full.endsWith(stop.slice(0, k))) {
          held = k;
          break;
        }
      }
    }
    return held;
  }
}
