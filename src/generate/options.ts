/**
 * Generation options: the public option types, their defaults, and validation that turns a user's
 * prompt and options into one checked plan.
 */
import type { GPTModel } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { TokenSampling } from '../backend/contract.js';
import {
  banFrom,
  composeProcessors,
  minNewTokens as minNewTokensProcessor,
  noRepeatNgram,
  repetitionPenalty as repetitionPenaltyProcessor,
  type LogitsProcessor,
} from './processors.js';
import { samplingWarpers } from './choose.js';
import { fail } from '../util/describe.js';

export interface GenerateOptions {
  /** encodes a text prompt and decodes the result's `text`; supplies the default eosTokenId */
  tokenizer?: Tokenizer;
  /** new tokens to generate at most; integer >= 1, default 20 */
  maxNewTokens?: number;
  /** eos is banned until this many new tokens exist; default 0 */
  minNewTokens?: number;
  /**
   * false (the default, as in Hugging Face) picks the argmax; true samples. temperature, topK, topP
   * and minP only act when sampling.
   */
  doSample?: boolean;
  /** >= 0, default 1; 0 while sampling is the greedy limit */
  temperature?: number;
  /** integer >= 0; 0 (the default) keeps every token */
  topK?: number;
  /** in (0, 1], default 1 */
  topP?: number;
  /** in [0, 1], default 0 */
  minP?: number;
  /** > 0, default 1 (none); CTRL's rule over every token already present, prompt included */
  repetitionPenalty?: number;
  /** integer >= 0; 0 (the default) blocks nothing */
  noRepeatNgramSize?: number;
  /** integer >= 1, default 1 (no beam search) */
  numBeams?: number;
  /** beam score = sum of log-probabilities / (new tokens)^lengthPenalty; default 1 */
  lengthPenalty?: number;
  /** beam search stops once numBeams hypotheses are finished; default false (stop only when no running beam can beat them) */
  earlyStopping?: boolean;
  /** sequences returned, best first; <= numBeams with beam search; > 1 needs sampling or beams */
  numReturnSequences?: number;
  /** default tokenizer.eosTokenId; null for none */
  eosTokenId?: number | null;
  /** fed when the prompt is empty; default eosTokenId (GPT-2 starts documents with <|endoftext|>) */
  bosTokenId?: number;
  /** the returned text is cut before the first of these; needs a tokenizer */
  stop?: string | readonly string[];
  /** sampling seed (Rng stream RngStream.sampling); default a fresh random seed */
  seed?: number;
  /** aborting rejects generate (and throws from the stream) with the signal's reason */
  signal?: AbortSignal;
  /** also return the log-probability of each new token under the distribution it was chosen from */
  returnLogprobs?: boolean;
}

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GenerateResult {
  /** the new tokens only (eos included when it ended the sequence) */
  ids: number[];
  /** decoded new tokens (eos excluded, cut before a stop string), when a tokenizer was given */
  text?: string;
  logprobs?: number[];
  finishReason: FinishReason;
  /** ranking score with several sequences or beams: the length-penalised beam score, or the sum of logprobs when sampling */
  score?: number;
}

export interface GenerateSequences {
  /** best first */
  sequences: GenerateResult[];
}

export type Prompt = string | readonly number[] | Int32Array;

/** Everything generation needs, checked. */
export interface GenerationPlan {
  /** the ids fed first: the prompt, or [bosTokenId] for an empty one */
  prompt: number[];
  tokenizer: Tokenizer | undefined;
  maxNewTokens: number;
  /** positions each row is fed at most, prompt and new tokens: what its KV cache is sized for (up to maxSeqLen) */
  positions: number;
  doSample: boolean;
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean;
  numReturnSequences: number;
  eosTokenId: number | null;
  stops: string[];
  seed: number;
  signal: AbortSignal | undefined;
  returnLogprobs: boolean;
  /** penalties, n-gram block and min-new-tokens, then (when sampling) the warpers */
  process: LogitsProcessor;
  /**
   * The same choice as `process` then greedy/sample, as the backend's sampleTokens takes it, when
   * nothing in the plan needs the logits on the host (no repetition penalty, n-gram block or
   * min-new-tokens); null otherwise. Generation then reads back token ids instead of logits.
   */
  sampling: TokenSampling | null;
}

/** every option of GenerateOptions: the record's type makes a new option without an entry here fail to compile */
const OPTION_NAMES: Record<keyof GenerateOptions, true> = {
  tokenizer: true,
  maxNewTokens: true,
  minNewTokens: true,
  doSample: true,
  temperature: true,
  topK: true,
  topP: true,
  minP: true,
  repetitionPenalty: true,
  noRepeatNgramSize: true,
  numBeams: true,
  lengthPenalty: true,
  earlyStopping: true,
  numReturnSequences: true,
  eosTokenId: true,
  bosTokenId: true,
  stop: true,
  seed: true,
  signal: true,
  returnLogprobs: true,
};
const KNOWN_OPTIONS = new Set<string>(Object.keys(OPTION_NAMES));

/** the sampling warpers: they act only with doSample (said once per process when given without it) */
const SAMPLING_OPTIONS = ['temperature', 'topK', 'topP', 'minP'] as const;
let warnedGreedyWarpers = false;

/**
 * Logits are divided by the temperature and by or multiplied with the repetition penalty: outside
 * these bounds a float32 logit of ordinary size overflows to Infinity and sampling fails.
 */
const MIN_TEMPERATURE = 1e-6;
const MAX_SCALE = 1e6;

function integerOption(name: string, value: unknown, fallback: number, min: number, max = Infinity): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(name, max === Infinity ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`, value);
  }
  return value;
}

function numberOption(name: string, value: unknown, fallback: number, ok: (v: number) => boolean, allowed: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !ok(value)) fail(name, allowed, value);
  return value;
}

function booleanOption(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${JSON.stringify(value) ?? typeof value}`);
  return value;
}

function tokenIdOption(name: string, value: unknown, vocabSize: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= vocabSize) {
    fail(name, `an integer token id in [0, vocabSize = ${vocabSize})`, value);
  }
  return value;
}

export function planGeneration(model: GPTModel, prompt: Prompt, options: GenerateOptions = {}): GenerationPlan {
  if (options === null || typeof options !== 'object') throw new TypeError('generate options must be an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new TypeError(`unknown generate option "${key}"; known options: ${[...KNOWN_OPTIONS].join(', ')}`);
  }
  const vocabSize = model.config.vocabSize;
  const tokenizer = options.tokenizer;

  const maxNewTokens = integerOption('maxNewTokens', options.maxNewTokens, 20, 1);
  const minNewTokens = integerOption('minNewTokens', options.minNewTokens, 0, 0, maxNewTokens);
  const doSample = booleanOption('doSample', options.doSample, false);
  const temperature = numberOption(
    'temperature',
    options.temperature,
    1,
    (v) => v === 0 || (v >= MIN_TEMPERATURE && v <= MAX_SCALE),
    `0 (greedy) or a number in [${MIN_TEMPERATURE}, ${MAX_SCALE}]`,
  );
  const topK = integerOption('topK', options.topK, 0, 0);
  const topP = numberOption('topP', options.topP, 1, (v) => v > 0 && v <= 1, 'in (0, 1]');
  const minP = numberOption('minP', options.minP, 0, (v) => v >= 0 && v <= 1, 'in [0, 1]');
  const repetitionPenalty = numberOption(
    'repetitionPenalty',
    options.repetitionPenalty,
    1,
    (v) => v >= 1 / MAX_SCALE && v <= MAX_SCALE,
    `a number in [${1 / MAX_SCALE}, ${MAX_SCALE}]`,
  );
  const noRepeatNgramSize = integerOption('noRepeatNgramSize', options.noRepeatNgramSize, 0, 0);
  const numBeams = integerOption('numBeams', options.numBeams, 1, 1);
  const lengthPenalty = numberOption('lengthPenalty', options.lengthPenalty, 1, Number.isFinite, 'a finite number');
  const earlyStopping = booleanOption('earlyStopping', options.earlyStopping, false);
  const numReturnSequences = integerOption('numReturnSequences', options.numReturnSequences, 1, 1);
  const returnLogprobs = booleanOption('returnLogprobs', options.returnLogprobs, false);

  const ignoredWarpers = doSample ? [] : SAMPLING_OPTIONS.filter((name) => options[name] !== undefined);
  if (ignoredWarpers.length > 0 && !warnedGreedyWarpers) {
    warnedGreedyWarpers = true;
    console.warn(
      `[tinygpt] generate: ${ignoredWarpers.join(', ')} given without doSample: true, so decoding is greedy and ` +
        `${ignoredWarpers.length > 1 ? 'they have' : 'it has'} no effect (model.generate used to sample then; pass doSample: true to sample)`,
    );
  }
  if (numBeams > 1 && doSample) throw new RangeError('doSample with numBeams > 1 (beam sampling) is not supported: use one or the other');
  if (numBeams > 1 && numReturnSequences > numBeams)
    fail('numReturnSequences', `an integer in [1, numBeams = ${numBeams}]`, numReturnSequences);
  if (numBeams === 1 && !doSample && numReturnSequences > 1) {
    throw new RangeError(
      `numReturnSequences = ${numReturnSequences} needs doSample: true or numBeams >= numReturnSequences (greedy gives one sequence)`,
    );
  }

  let eosTokenId: number | null = null;
  if (options.eosTokenId !== undefined && options.eosTokenId !== null)
    eosTokenId = tokenIdOption('eosTokenId', options.eosTokenId, vocabSize);
  else if (options.eosTokenId === undefined && tokenizer?.eosTokenId !== undefined)
    eosTokenId = tokenIdOption('tokenizer.eosTokenId', tokenizer.eosTokenId, vocabSize);

  let stops: string[] = [];
  if (options.stop !== undefined) {
    const stop: unknown = options.stop;
    if (typeof stop !== 'string' && !Array.isArray(stop)) fail('stop', 'a string or an array of strings', stop);
    stops = typeof stop === 'string' ? [stop] : [...(stop as readonly string[])];
    stops.forEach((s, i) => {
      if (typeof s !== 'string' || s.length === 0) fail(`stop[${i}]`, 'a non-empty string', s);
    });
    if (stops.length > 0 && !tokenizer) throw new TypeError('stop strings need options.tokenizer to decode the generated text');
  }

  let seed: number;
  if (options.seed === undefined) seed = Math.floor(Math.random() * 0x100000000);
  else if (typeof options.seed !== 'number' || !Number.isInteger(options.seed)) fail('seed', 'an integer', options.seed);
  else seed = options.seed;

  const signal = options.signal;
  if (signal !== undefined && (typeof signal !== 'object' || typeof signal.aborted !== 'boolean')) {
    throw new TypeError('signal must be an AbortSignal');
  }

  let ids: number[];
  if (typeof prompt === 'string') {
    if (!tokenizer) throw new TypeError('a text prompt needs options.tokenizer (or pass token ids)');
    ids = tokenizer.encode(prompt);
  } else if (Array.isArray(prompt) || prompt instanceof Int32Array) {
    ids = Array.from(prompt as ArrayLike<number>);
  } else {
    throw new TypeError('prompt must be a string, a number[] or an Int32Array of token ids');
  }
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) fail(`prompt[${i}]`, `a token id in [0, vocabSize = ${vocabSize})`, id);
  });
  if (ids.length === 0) {
    const start = options.bosTokenId ?? eosTokenId;
    if (start === undefined || start === null) {
      throw new RangeError('prompt is empty and there is no start token: pass bosTokenId, eosTokenId or a tokenizer with an eos token');
    }
    ids = [tokenIdOption('bosTokenId', start, vocabSize)];
  } else if (options.bosTokenId !== undefined) {
    tokenIdOption('bosTokenId', options.bosTokenId, vocabSize);
  }

  const processors: LogitsProcessor[] = [];
  // a model whose vocabulary was padded past its tokenizer's (as GPT-2's 50257 to 50304) must never
  // pick an id the tokenizer cannot decode
  if (tokenizer && tokenizer.vocabSize < vocabSize) processors.push(banFrom(tokenizer.vocabSize));
  if (repetitionPenalty !== 1) processors.push(repetitionPenaltyProcessor(repetitionPenalty));
  if (noRepeatNgramSize > 0) processors.push(noRepeatNgram(noRepeatNgramSize));
  if (minNewTokens > 0 && eosTokenId !== null) processors.push(minNewTokensProcessor(minNewTokens, eosTokenId, ids.length));
  const allowed = Math.min(vocabSize, tokenizer?.vocabSize ?? vocabSize);
  const hostOnly = repetitionPenalty !== 1 || noRepeatNgramSize > 0 || (minNewTokens > 0 && eosTokenId !== null) || !(allowed >= 1);
  if (doSample) processors.push(...samplingWarpers({ temperature, topK, topP, minP }));
  const sampling: TokenSampling | null = hostOnly
    ? null
    : {
        // temperature 0 keeps only the argmax: greedy, though a sampled plan still draws a uniform per token
        greedy: !doSample || temperature === 0,
        temperature: temperature === 0 ? 1 : temperature,
        topK,
        topP,
        minP,
        allowed,
      };

  return {
    prompt: ids,
    tokenizer,
    maxNewTokens,
    positions: ids.length + maxNewTokens,
    doSample,
    numBeams,
    lengthPenalty,
    earlyStopping,
    numReturnSequences,
    eosTokenId,
    stops,
    seed,
    signal,
    returnLogprobs,
    process: composeProcessors(processors),
    sampling,
  };
}

/** throw the signal's reason (an AbortError DOMException by default) once it is aborted */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new DOMException('generation was aborted', 'AbortError');
}
