/**
 * Beam search (Hugging Face's algorithm). One KV cache holds numBeams rows; every step:
 * - each live beam's logits go through the processors, then log-softmax; a candidate's score is
 *   its beam's sum of log-probabilities plus the token's;
 * - the best 2 * numBeams candidates are taken in order (ties: lower beam, then lower token id);
 *   a candidate among the first numBeams that ends with eos, or whose text now contains a stop
 *   string, becomes a finished hypothesis; the others fill the next numBeams beams;
 * - the cache rows are reordered to the chosen beams' sources and the chosen tokens fed.
 * A hypothesis scores sum(logprobs) / (new tokens, eos included)^lengthPenalty, and only the best
 * numBeams finished ones are kept. The search ends when numBeams are finished and either
 * earlyStopping is set or no running beam can still beat the worst of them (an exact bound: the
 * running sum can only fall, so its best possible score is at maxNewTokens tokens when
 * lengthPenalty > 0, else at the current length); at maxNewTokens, running beams join the finished.
 */
import { EventLoopTurns } from '../util/turns.js';
import type { GPTModel } from '../model/types.js';
import { throwIfAborted, type GenerationPlan } from './options.js';
import { logSoftmax } from './samplers.js';
import { TextTracker } from './text.js';
import { ContextWindow } from './window.js';

export interface Hypothesis {
  /** new tokens, eos included when it ended the hypothesis */
  ids: number[];
  /** log-probability of each new token (after the processors) */
  logprobs: number[];
  sumLogprob: number;
  /** sumLogprob / ids.length^lengthPenalty */
  score: number;
  finishReason: 'eos' | 'stop' | 'length';
}

interface Beam {
  ids: number[];
  logprobs: number[];
  /** -Infinity for a beam that holds nothing yet (only beam 0 is live at the start) */
  sumLogprob: number;
}

interface Candidate {
  score: number;
  beam: number;
  token: number;
  logprob: number;
}

/** Finished hypotheses, best first, at most `capacity`. */
class HypothesisSet {
  readonly items: Hypothesis[] = [];
  constructor(
    private readonly capacity: number,
    private readonly lengthPenalty: number,
  ) {}

  add(ids: number[], logprobs: number[], sumLogprob: number, finishReason: Hypothesis['finishReason']): void {
    const score = sumLogprob / Math.pow(ids.length, this.lengthPenalty);
    let at = this.items.length;
    while (at > 0 && this.items[at - 1].score < score) at--;
    if (at >= this.capacity) return;
    this.items.splice(at, 0, { ids, logprobs, sumLogprob, score, finishReason });
    if (this.items.length > this.capacity) this.items.pop();
  }

  get full(): boolean {
    return this.items.length >= this.capacity;
  }

  get worstScore(): number {
    return this.items[this.items.length - 1].score;
  }
}

/** Keep the best `capacity` offers in order; later offers lose ties. */
class TopCandidates {
  readonly items: Candidate[] = [];
  constructor(private readonly capacity: number) {}

  offer(score: number, beam: number, token: number, logprob: number): void {
    const items = this.items;
    if (items.length === this.capacity && score <= items[items.length - 1].score) return;
    let at = items.length;
    while (at > 0 && items[at - 1].score < score) at--;
    items.splice(at, 0, { score, beam, token, logprob });
    if (items.length > this.capacity) items.pop();
  }
}

/** Run beam search; resolves with the finished hypotheses, best first (at most numBeams). */
export async function beamSearch(model: GPTModel, plan: GenerationPlan): Promise<Hypothesis[]> {
  const numBeams = plan.numBeams;
  const V = model.config.vocabSize;
  const finished = new HypothesisSet(numBeams, plan.lengthPenalty);
  let beams: Beam[] = Array.from({ length: numBeams }, (_, b) => ({ ids: [], logprobs: [], sumLogprob: b === 0 ? 0 : -Infinity }));
  let histories: number[][] = beams.map(() => [...plan.prompt]);
  let searchDone = false;

  throwIfAborted(plan.signal);
  const turns = new EventLoopTurns();
  const window = new ContextWindow(model, numBeams, plan.positions);
  try {
    let logits = await window.prefill(histories);
    for (let step = 0; step < plan.maxNewTokens; step++) {
      // an abort (a Stop button, a worker's abort message) lands between tokens
      await turns.turn();
      throwIfAborted(plan.signal);
      const top = new TopCandidates(2 * numBeams);
      for (let b = 0; b < numBeams; b++) {
        const beam = beams[b];
        if (beam.sumLogprob === -Infinity) continue;
        const row = plan.process(logits.subarray(b * V, (b + 1) * V), histories[b]);
        const broken = row.findIndex((l) => Number.isNaN(l) || l === Infinity);
        if (broken >= 0) throw new RangeError(`logits of beam ${b}: ${row[broken]} at id ${broken}`);
        const logprobs = logSoftmax(row);
        for (let v = 0; v < V; v++) {
          if (logprobs[v] !== -Infinity) top.offer(beam.sumLogprob + logprobs[v], b, v, logprobs[v]);
        }
      }

      const chosen: Candidate[] = [];
      for (let rank = 0; rank < top.items.length && chosen.length < numBeams; rank++) {
        const c = top.items[rank];
        const parent = beams[c.beam];
        const ending = c.token === plan.eosTokenId ? 'eos' : completesStop(plan, parent.ids, c.token) ? 'stop' : null;
        if (ending) {
          if (rank < numBeams) finished.add([...parent.ids, c.token], [...parent.logprobs, c.logprob], c.score, ending);
        } else {
          chosen.push(c);
        }
      }

      if (chosen.length === 0) {
        searchDone = true;
        break;
      }
      if (finished.full && (plan.earlyStopping || finished.worstScore >= bestAttainable(chosen[0].score, step + 1, plan))) {
        searchDone = true;
        break;
      }

      // too few candidates (a tiny vocabulary): the spare rows copy beam 0 and stay dead
      const sources = Array.from({ length: numBeams }, (_, i) => chosen[i]?.beam ?? chosen[0].beam);
      const fed = Array.from({ length: numBeams }, (_, i) => chosen[i]?.token ?? chosen[0].token);
      beams = Array.from({ length: numBeams }, (_, i) => {
        const c = chosen[i];
        if (!c) return { ids: [], logprobs: [], sumLogprob: -Infinity };
        const parent = beams[c.beam];
        return { ids: [...parent.ids, c.token], logprobs: [...parent.logprobs, c.logprob], sumLogprob: c.score };
      });
      histories = sources.map((s, i) => [...histories[s], fed[i]]);

      if (step === plan.maxNewTokens - 1) break;
      throwIfAborted(plan.signal);
      window.reorder(sources);
      logits = await window.step(fed, histories);
    }
  } finally {
    window.dispose();
  }

  if (!searchDone) {
    for (const beam of beams) {
      if (beam.sumLogprob !== -Infinity) finished.add(beam.ids, beam.logprobs, beam.sumLogprob, 'length');
    }
  }
  return finished.items;
}

/**
 * Whether appending `token` makes the decoded new text contain a stop string. The parent never
 * does (it would have finished), so only the new token can complete one. Decoding from the prompt
 * each time costs O(length) per candidate, only when stop strings are given.
 */
function completesStop(plan: GenerationPlan, parentIds: readonly number[], token: number): boolean {
  if (!plan.tokenizer || plan.stops.length === 0) return false;
  const tracker = new TextTracker(plan.tokenizer, plan.prompt, plan.stops);
  for (const id of parentIds) tracker.push(id);
  tracker.push(token);
  return tracker.stopped;
}

/** the best score a running beam with this sum at this length could still reach */
function bestAttainable(sumLogprob: number, length: number, plan: GenerationPlan): number {
  const finalLength = plan.lengthPenalty > 0 ? plan.maxNewTokens : length;
  return sumLogprob / Math.pow(finalLength, plan.lengthPenalty);
}
