/**
 * Supervised fine-tuning data: prompt/response pairs become one row each, prompt tokens, response
 * tokens, then the tokenizer's end-of-text, so examples are separated by end-of-text as GPT-2's
 * documents are and the model learns where a response stops. Only the response and its closing
 * end-of-text are targets: the prompt's targets are the ignore index, so they add nothing to the
 * loss or its gradient. train() takes the result as `sequences` (or `valSequences`).
 */
import type { Tokenizer } from '../tokenizer/types.js';
import type { SupervisedDataset, SupervisedExample } from './data.js';
import { fail } from '../util/describe.js';

export interface PromptResponse {
  prompt: string;
  response: string;
}

export interface SftDatasetOptions {
  /** the id closing each example (default: the tokenizer's end-of-text, eosTokenId) */
  eosTokenId?: number;
}

/** Tokenize prompt/response pairs for train({ sequences }): the loss counts the responses only. */
export function sftDataset(tokenizer: Tokenizer, pairs: readonly PromptResponse[], options: SftDatasetOptions = {}): SupervisedDataset {
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.encode !== 'function') {
    throw new TypeError('sftDataset: tokenizer must be a Tokenizer (BPETokenizer, CharTokenizer or a loaded one)');
  }
  const eos = options.eosTokenId ?? tokenizer.eosTokenId;
  if (eos === undefined) {
    throw new RangeError(
      "sftDataset: the tokenizer has no end-of-text token (train it with specialTokens: ['<|endoftext|>']) and options.eosTokenId is not given",
    );
  }
  if (!Number.isInteger(eos) || eos < 0 || eos >= tokenizer.vocabSize) {
    fail('sftDataset: options.eosTokenId', `an integer in [0, ${tokenizer.vocabSize})`, eos);
  }
  const list: unknown = pairs;
  if (!Array.isArray(list) || list.length === 0) throw new TypeError('sftDataset: pairs must be a non-empty array of { prompt, response }');
  const examples: SupervisedExample[] = (list as unknown[]).map((item, i) => {
    const pair = item as Partial<PromptResponse> | null;
    if (pair === null || typeof pair !== 'object' || typeof pair.prompt !== 'string' || typeof pair.response !== 'string') {
      throw new TypeError(`sftDataset: pairs[${i}] must be { prompt: string, response: string }`);
    }
    // encoded apart, so the response's first token is never merged into the prompt's last
    const prompt = tokenizer.encode(pair.prompt);
    const response = tokenizer.encode(pair.response);
    const ids = new Int32Array(prompt.length + response.length + 1);
    ids.set(prompt, 0);
    ids.set(response, prompt.length);
    ids[ids.length - 1] = eos;
    if (ids.length < 2) throw new RangeError(`sftDataset: pairs[${i}] has an empty prompt and response: nothing to learn from`);
    return { ids, promptLength: prompt.length };
  });
  return { kind: 'supervised', examples };
}
