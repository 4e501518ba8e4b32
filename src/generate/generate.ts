/**
 * generate / generateStream: KV-cached decoding with greedy choice, seeded sampling or beam search.
 *
 *   const { ids, text } = await generate(model, 'Once upon', { tokenizer, maxNewTokens: 50, doSample: true, topP: 0.9, seed: 1 });
 *   for await (const { id, text } of generateStream(model, 'Once upon', { tokenizer })) ...
 */
import { checkNotDisposed } from '../util/dispose.js';
import { EventLoopTurns } from '../util/turns.js';
import type { GPTModel, TokenChoice } from '../model/types.js';
import {
  planGeneration,
  throwIfAborted,
  type FinishReason,
  type GenerateOptions,
  type GenerateResult,
  type GenerateSequences,
  type GenerationPlan,
  type Prompt,
} from './options.js';
import { greedy, logSoftmax, sample, samplingRng } from './samplers.js';
import { TextTracker } from './text.js';
import { ContextWindow } from './window.js';

/** One streamed token. */
export interface StreamToken {
  id: number;
  /** text that became complete with this token (may be ''), when a tokenizer was given */
  text?: string;
  /** log-probability of the token, with returnLogprobs */
  logprob?: number;
  /** set on the last token */
  finishReason?: FinishReason;
}

/**
 * Generate new tokens after `prompt` (ids, or text with options.tokenizer). Resolves with the new ids
 * (and text, logprobs); with numReturnSequences > 1, `{ sequences }` best first.
 */
export function generate(model: GPTModel, prompt: Prompt, options?: GenerateOptions & { numReturnSequences?: 1 }): Promise<GenerateResult>;
export function generate(model: GPTModel, prompt: Prompt, options?: GenerateOptions): Promise<GenerateResult | GenerateSequences>;
export async function generate(
  model: GPTModel,
  prompt: Prompt,
  options: GenerateOptions = {},
): Promise<GenerateResult | GenerateSequences> {
  checkNotDisposed(model, 'generate');
  const plan = planGeneration(model, prompt, options);
  const results = plan.numBeams > 1 ? await beamResults(model, plan) : await sampledResults(model, plan);
  return plan.numReturnSequences > 1 ? { sequences: results } : results[0];
}

/**
 * The tokens of one greedy or sampled sequence as they are chosen. Options are checked before this
 * returns; beam search and numReturnSequences > 1 are not streamable.
 */
export function generateStream(model: GPTModel, prompt: Prompt, options: GenerateOptions = {}): AsyncIterable<StreamToken> {
  checkNotDisposed(model, 'generateStream');
  const plan = planGeneration(model, prompt, options);
  if (plan.numBeams > 1) throw new RangeError(`generateStream streams one sequence: numBeams must be 1, got ${plan.numBeams}`);
  if (plan.numReturnSequences > 1)
    throw new RangeError(`generateStream streams one sequence: numReturnSequences must be 1, got ${plan.numReturnSequences}`);
  const held: HeldCache = { window: null };
  const stream = streamTokens(model, plan, held);
  abandonedStreams?.register(stream, held);
  return stream;
}

/** the KV cache a stream holds between its first next() and its end (null outside that) */
interface HeldCache {
  window: ContextWindow | null;
}

/**
 * A stream dropped part-way (neither run to its end nor closed with return()) would keep its KV
 * cache on the backend forever: once the stream object is collected, free that cache. The held
 * value does not reference the stream, so the registry does not keep it alive.
 */
const abandonedStreams =
  typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry<HeldCache>((held) => {
        try {
          held.window?.dispose();
        } catch {
          // the model was disposed meanwhile: its backend freed everything
        }
        held.window = null;
      })
    : null;

async function* streamTokens(model: GPTModel, plan: GenerationPlan, held: HeldCache): AsyncGenerator<StreamToken> {
  for await (const event of decodeRows(model, plan, 1, held)) {
    const token: StreamToken = { id: event.id };
    if (event.text !== undefined) token.text = event.text;
    if (plan.returnLogprobs) token.logprob = event.logprob;
    if (event.finishReason) token.finishReason = event.finishReason;
    yield token;
  }
}

interface RowEvent {
  row: number;
  id: number;
  logprob: number;
  text: string | undefined;
  finishReason: FinishReason | undefined;
}

interface RowState {
  history: number[];
  done: boolean;
  tracker: TextTracker | undefined;
}

/**
 * Decode `rows` independent sequences in lockstep through one KV cache: each step processes every
 * unfinished row's logits, picks a token (argmax or a seeded draw, rows in order from one Rng), and
 * feeds all rows one position (finished rows repeat their last token, which is ignored).
 */
async function* decodeRows(model: GPTModel, plan: GenerationPlan, rows: number, held?: HeldCache): AsyncGenerator<RowEvent> {
  const V = model.config.vocabSize;
  const rng = samplingRng(plan.seed);
  const needLogprobs = plan.returnLogprobs || rows > 1;
  const states: RowState[] = Array.from({ length: rows }, () => ({
    history: [...plan.prompt],
    done: false,
    tracker: plan.tokenizer ? new TextTracker(plan.tokenizer, plan.prompt, plan.stops) : undefined,
  }));
  // Tokens are chosen on the backend (only the ids come back) when nothing needs the logits here.
  // The uniforms are drawn before each forward for the rows still going, in row order: the draws
  // the host path makes after it, so a seed gives the same ids either way.
  const sampling = needLogprobs ? null : plan.sampling;
  const onBackend = sampling !== null && typeof model.forwardCachedTokens === 'function';
  const choice = (): TokenChoice => ({
    sampling: sampling!,
    uniforms: states.map((s) => (plan.doSample && !s.done ? rng.next() : 0)),
  });
  throwIfAborted(plan.signal);
  const turns = new EventLoopTurns();
  // the cache holds the prompt and the new tokens (the last one is never fed back): no more memory than that
  const window = new ContextWindow(model, rows, plan.positions);
  if (held) held.window = window;
  try {
    const histories = () => states.map((s) => s.history);
    let chosen = onBackend ? await window.prefillTokens(histories(), choice()) : null;
    let logits = onBackend ? null : await window.prefill(histories());
    for (let step = 0; step < plan.maxNewTokens; step++) {
      // an abort (a Stop button, a worker's abort message) lands between tokens
      await turns.turn();
      throwIfAborted(plan.signal);
      const fed: number[] = [];
      for (let r = 0; r < rows; r++) {
        const state = states[r];
        if (state.done) {
          const filler = state.history[state.history.length - 1];
          state.history.push(filler);
          fed.push(filler);
          continue;
        }
        let id: number;
        let logprob = NaN;
        if (chosen) {
          id = chosen[r];
          if (id < 0)
            throw new RangeError(`logits: row ${r} has a NaN or +Infinity logit, or every token is banned; no token can be chosen`);
        } else {
          const row = plan.process(logits!.subarray(r * V, (r + 1) * V), state.history);
          id = plan.doSample ? sample(row, rng) : greedy(row);
          if (needLogprobs) logprob = logSoftmax(row)[id];
        }
        state.history.push(id);
        fed.push(id);

        const isEos = id === plan.eosTokenId;
        let text: string | undefined;
        if (state.tracker) text = isEos ? '' : state.tracker.push(id);
        let finishReason: FinishReason | undefined;
        if (isEos) finishReason = 'eos';
        else if (state.tracker?.stopped) finishReason = 'stop';
        else if (step === plan.maxNewTokens - 1) finishReason = 'length';
        if (finishReason) {
          state.done = true;
          if (state.tracker) text += state.tracker.finish();
        }
        yield { row: r, id, logprob, text, finishReason };
      }
      if (states.every((s) => s.done)) break;
      throwIfAborted(plan.signal);
      if (onBackend) chosen = await window.stepTokens(fed, histories(), choice());
      else logits = await window.step(fed, histories());
    }
  } finally {
    if (held) held.window = null;
    window.dispose();
  }
}

async function sampledResults(model: GPTModel, plan: GenerationPlan): Promise<GenerateResult[]> {
  const rows = plan.numReturnSequences;
  const results = Array.from({ length: rows }, () => ({
    ids: [] as number[],
    logprobs: [] as number[],
    text: '',
    finishReason: 'length' as FinishReason,
  }));
  for await (const event of decodeRows(model, plan, rows)) {
    const result = results[event.row];
    result.ids.push(event.id);
    result.logprobs.push(event.logprob);
    if (event.text !== undefined) result.text += event.text;
    if (event.finishReason) result.finishReason = event.finishReason;
  }
  const shaped = results.map((r) => {
    const out: GenerateResult = { ids: r.ids, finishReason: r.finishReason };
    if (plan.tokenizer) out.text = r.text;
    if (plan.returnLogprobs) out.logprobs = r.logprobs;
    if (rows > 1) out.score = r.logprobs.reduce((a, b) => a + b, 0);
    return out;
  });
  // best first by total log-probability; a stable sort keeps row order among equals
  if (rows > 1) shaped.sort((a, b) => (b.score as number) - (a.score as number));
  return shaped;
}

async function beamResults(model: GPTModel, plan: GenerationPlan): Promise<GenerateResult[]> {
  // beam search's code loads when a call asks for beams: a page that samples or decodes greedily never needs it
  const { beamSearch } = await import('./beam.js');
  const hypotheses = await beamSearch(model, plan);
  return hypotheses.slice(0, plan.numReturnSequences).map((h) => {
    const out: GenerateResult = { ids: h.ids, finishReason: h.finishReason, score: h.score };
    if (plan.tokenizer) {
      // a hypothesis ends at eos or at the token that completed a stop string: the text stops before either
      const tracker = new TextTracker(plan.tokenizer, plan.prompt, plan.stops);
      for (const id of h.ids) if (id !== plan.eosTokenId) tracker.push(id);
      tracker.finish();
      out.text = tracker.text;
    }
    if (plan.returnLogprobs) out.logprobs = h.logprobs;
    return out;
  });
}
