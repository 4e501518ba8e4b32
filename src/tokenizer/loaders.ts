/**
 * Readers and writers for other tools' BPE files. Each reader checks its input and returns a
 * BPEModel (tokens by id, merges by id, special tokens) that BPETokenizer validates once more.
 *
 * - GPT-2: vocab.json (token -> id) + merges.txt ("left right" per line, optional #version line)
 * - tiktoken: one "<base64 bytes> <rank>" per line; the rank is the id and also the merge
 *   priority: any two tokens whose concatenation is a token merge into it, lowest rank first
 * - Hugging Face tokenizer.json with a BPE model and GPT-2's ByteLevel pre-tokenizer
 */
import { bytesToTokenString, decodeBase64, tokenStringToBytes } from './bytes.js';
import { describe } from '../util/describe.js';

/** Everything a byte-level BPE tokenizer is made of. */
export interface BPEModel {
  /** id -> token: GPT-2 byte spelling for ordinary tokens, the text itself for special tokens */
  tokens: string[];
  /** merges in priority order as flat (left id, right id) pairs */
  merges: number[];
  /** special token text -> id */
  specialTokens: Record<string, number>;
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A JSON object given as text or as an already parsed value. */
export function parseJsonObject(input: unknown, field: string): JsonObject {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw new Error(`${field}: not valid JSON (${(err as Error).message})`, { cause: err });
    }
  }
  if (!isObject(value)) {
    throw new TypeError(`${field}: expected a JSON object, got ${describe(value)}`);
  }
  return value;
}

/** Ids are kept below 2^21 so that training can key pairs by left * limit + right exactly. */
export const MAX_VOCAB_SIZE = 1 << 21;

/** Tokens by id from a token -> id map; ids must run 0..N-1 without gaps or repeats. */
function tokensFromVocab(vocab: JsonObject, field: string): string[] {
  const tokens: string[] = [];
  for (const [token, id] of Object.entries(vocab)) {
    // an id past the limit would land outside the array's elements (as a property) and be dropped
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= MAX_VOCAB_SIZE) {
      throw new RangeError(
        `${field}: token ${JSON.stringify(token)} has id ${describe(id)}; ids must be integers in [0, ${MAX_VOCAB_SIZE})`,
      );
    }
    if (tokens[id] !== undefined) {
      throw new Error(`${field}: id ${id} is given to both ${JSON.stringify(tokens[id])} and ${JSON.stringify(token)}`);
    }
    tokens[id] = token;
  }
  checkDense(tokens, field);
  return tokens;
}

function checkDense(tokens: (string | undefined)[], field: string): void {
  for (let id = 0; id < tokens.length; id++) {
    if (tokens[id] === undefined) {
      throw new Error(`${field}: ids must run from 0 to ${tokens.length - 1} without gaps; id ${id} is missing`);
    }
  }
}

function idMap(tokens: readonly string[]): Map<string, number> {
  const ids = new Map<string, number>();
  tokens.forEach((token, id) => {
    if (!ids.has(token)) ids.set(token, id);
  });
  return ids;
}

/** Appends the ids of one merge (given as token strings) and returns the id it produces. */
function resolveMerge(left: string, right: string, ids: Map<string, number>, merges: number[], where: string): number {
  const a = ids.get(left);
  const b = ids.get(right);
  if (a === undefined || b === undefined) {
    const missing = a === undefined ? left : right;
    throw new Error(`${where}: token ${JSON.stringify(missing)} is not in the vocab`);
  }
  const out = ids.get(left + right);
  if (out === undefined) {
    throw new Error(`${where}: the merged token ${JSON.stringify(left + right)} is not in the vocab`);
  }
  merges.push(a, b);
  return out;
}

/**
 * Tokens that are neither a single byte nor made by a merge can never come out of BPE: they are
 * the special tokens (GPT-2's `<|endoftext|>`).
 */
function unreachableTokens(tokens: readonly string[], produced: Set<number>): Record<string, number> {
  const specials: Record<string, number> = {};
  tokens.forEach((token, id) => {
    const bytes = tokenStringToBytes(token);
    const isByte = bytes !== null && bytes.length === 1;
    if (!isByte && !produced.has(id)) specials[token] = id;
  });
  return specials;
}

/** GPT-2's vocab.json (text or object) and merges.txt. */
export function parseGPT2(vocabInput: unknown, mergesText: unknown): BPEModel {
  const tokens = tokensFromVocab(parseJsonObject(vocabInput, 'vocab'), 'vocab');
  if (typeof mergesText !== 'string') {
    throw new TypeError(`merges: expected the text of merges.txt, got ${describe(mergesText)}`);
  }
  const ids = idMap(tokens);
  const merges: number[] = [];
  const produced = new Set<number>();
  const lines = mergesText.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (line === '' || (i === 0 && line.startsWith('#version'))) continue;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new Error(`merges line ${i + 1}: expected two tokens separated by one space, got ${JSON.stringify(line)}`);
    }
    produced.add(resolveMerge(parts[0], parts[1], ids, merges, `merges line ${i + 1}`));
  }
  return { tokens, merges, specialTokens: unreachableTokens(tokens, produced) };
}

/**
 * A tiktoken rank file. Special tokens are not part of such files: by default
 * `<|endoftext|>` takes the next id (GPT-2's r50k_base: 50256).
 */
export function parseTiktoken(text: unknown, specialTokens?: Record<string, number>): BPEModel {
  if (typeof text !== 'string') {
    throw new TypeError(`tiktoken: expected the text of a .tiktoken file, got ${describe(text)}`);
  }
  const tokens: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (line === '') continue;
    const parts = line.split(' ');
    const rank = parts.length === 2 && /^\d+$/.test(parts[1]) ? Number(parts[1]) : -1;
    if (rank < 0) {
      throw new Error(`tiktoken line ${i + 1}: expected "<base64 token> <rank>", got ${JSON.stringify(line.slice(0, 80))}`);
    }
    if (rank >= MAX_VOCAB_SIZE)
      throw new RangeError(`tiktoken line ${i + 1}: rank ${rank} is out of range; ranks must be in [0, ${MAX_VOCAB_SIZE})`);
    const bytes = decodeBase64(parts[0]);
    if (bytes === null || bytes.length === 0) {
      throw new Error(`tiktoken line ${i + 1}: ${JSON.stringify(parts[0])} is not a base64 token`);
    }
    if (tokens[rank] !== undefined) {
      throw new Error(`tiktoken line ${i + 1}: rank ${rank} is given twice`);
    }
    tokens[rank] = bytesToTokenString(bytes);
  }
  checkDense(tokens, 'tiktoken');
  const specials = specialTokens ?? { '<|endoftext|>': tokens.length };
  for (const [content, id] of Object.entries(specials)) {
    if (!Number.isInteger(id) || id < tokens.length || id >= MAX_VOCAB_SIZE) {
      throw new RangeError(
        `specialTokens: ${JSON.stringify(content)} has id ${id}; special ids must be integers in [${tokens.length}, ${MAX_VOCAB_SIZE}) (after the ranks in the file)`,
      );
    }
    if (tokens[id] !== undefined) {
      throw new Error(`specialTokens: id ${id} is given to both ${JSON.stringify(tokens[id])} and ${JSON.stringify(content)}`);
    }
    tokens[id] = content;
  }
  checkDense(tokens, 'specialTokens');

  // every split of a token into two tokens is a merge into it, at that token's rank
  const isSpecial = new Set(Object.values(specials));
  const ids = idMap(tokens);
  const merges: number[] = [];
  for (let id = 0; id < tokens.length; id++) {
    if (isSpecial.has(id)) continue;
    const token = tokens[id];
    for (let k = 1; k < token.length; k++) {
      const a = ids.get(token.slice(0, k));
      const b = ids.get(token.slice(k));
      if (a !== undefined && b !== undefined && !isSpecial.has(a) && !isSpecial.has(b)) merges.push(a, b);
    }
  }
  return { tokens, merges, specialTokens: { ...specials } };
}

function expectAbsent(value: unknown, allowed: readonly unknown[], field: string, note: string): void {
  if (value !== undefined && !allowed.includes(value)) {
    throw new Error(`tokenizer.json: ${field} is ${JSON.stringify(value)}; ${note}`);
  }
}

/** A Hugging Face tokenizer.json (text or object) with a byte-level BPE model. */
export function parseHuggingFace(input: unknown): BPEModel {
  const root = parseJsonObject(input, 'tokenizer.json');
  const model = root.model;
  if (!isObject(model)) {
    throw new Error(`tokenizer.json: "model" must be an object, got ${describe(model)}`);
  }
  if (model.type !== 'BPE') {
    throw new Error(`tokenizer.json: model.type is ${JSON.stringify(model.type)}; only "BPE" is supported`);
  }
  expectAbsent(root.normalizer, [null], 'normalizer', 'only null (no normalizer, as GPT-2) is supported');
  const pre = root.pre_tokenizer;
  if (!isObject(pre) || pre.type !== 'ByteLevel') {
    throw new Error(`tokenizer.json: pre_tokenizer must be {"type": "ByteLevel"} (GPT-2's), got ${JSON.stringify(pre)?.slice(0, 120)}`);
  }
  expectAbsent(pre.add_prefix_space, [false], 'pre_tokenizer.add_prefix_space', 'only false (GPT-2) is supported');
  expectAbsent(pre.use_regex, [true], 'pre_tokenizer.use_regex', "only true (GPT-2's pattern) is supported");
  expectAbsent(model.dropout, [null, 0], 'model.dropout', 'BPE dropout is not supported');
  expectAbsent(model.continuing_subword_prefix, [null, ''], 'model.continuing_subword_prefix', 'only null or "" is supported');
  expectAbsent(model.end_of_word_suffix, [null, ''], 'model.end_of_word_suffix', 'only null or "" is supported');
  expectAbsent(model.byte_fallback, [false], 'model.byte_fallback', 'only false is supported');
  expectAbsent(model.ignore_merges, [false], 'model.ignore_merges', 'only false is supported');

  const vocab = model.vocab;
  if (!isObject(vocab)) {
    throw new TypeError(`tokenizer.json: model.vocab must be an object of token -> id, got ${describe(vocab)}`);
  }
  const tokens: (string | undefined)[] = [];
  for (const [token, id] of Object.entries(vocab)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new RangeError(`tokenizer.json: model.vocab token ${JSON.stringify(token)} has id ${describe(id)}; ids must be integers >= 0`);
    }
    if (tokens[id] !== undefined) {
      throw new Error(`tokenizer.json: model.vocab id ${id} is given to both ${JSON.stringify(tokens[id])} and ${JSON.stringify(token)}`);
    }
    tokens[id] = token;
  }
  const specialTokens: Record<string, number> = {};
  const added = root.added_tokens ?? [];
  if (!Array.isArray(added)) {
    throw new TypeError(`tokenizer.json: added_tokens must be an array, got ${describe(added)}`);
  }
  added.forEach((entry: unknown, i) => {
    if (
      !isObject(entry) ||
      typeof entry.content !== 'string' ||
      entry.content === '' ||
      typeof entry.id !== 'number' ||
      !Number.isInteger(entry.id) ||
      entry.id < 0
    ) {
      throw new Error(`tokenizer.json: added_tokens[${i}] must be {"id": integer >= 0, "content": non-empty string}`);
    }
    if (tokens[entry.id] !== undefined && tokens[entry.id] !== entry.content) {
      throw new Error(
        `tokenizer.json: added_tokens[${i}] gives id ${entry.id} to ${JSON.stringify(entry.content)}, but model.vocab has ${JSON.stringify(tokens[entry.id])} there`,
      );
    }
    tokens[entry.id] = entry.content;
    specialTokens[entry.content] = entry.id;
  });
  checkDense(tokens, 'tokenizer.json: model.vocab + added_tokens');
  const denseTokens = tokens as string[];

  const rawMerges = model.merges;
  if (!Array.isArray(rawMerges)) {
    throw new TypeError(`tokenizer.json: model.merges must be an array, got ${describe(rawMerges)}`);
  }
  const ids = idMap(denseTokens);
  const merges: number[] = [];
  rawMerges.forEach((merge: unknown, i) => {
    const where = `tokenizer.json: model.merges[${i}]`;
    let pair: unknown[] | null = null;
    if (typeof merge === 'string') pair = merge.split(' ');
    else if (Array.isArray(merge)) pair = merge;
    if (!pair || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string' || pair[0] === '' || pair[1] === '') {
      throw new Error(`${where}: expected "left right" or ["left", "right"], got ${JSON.stringify(merge)}`);
    }
    resolveMerge(pair[0], pair[1], ids, merges, where);
  });
  return { tokens: denseTokens, merges, specialTokens };
}

/** A Hugging Face tokenizer.json object equivalent to GPT-2's (ByteLevel pre-tokenizer, BPE). */
export function toHuggingFace(model: BPEModel): Record<string, unknown> {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const vocab: Record<string, number> = {};
  model.tokens.forEach((token, id) => {
    vocab[token] = id;
  });
  const merges: string[] = [];
  for (let i = 0; i < model.merges.length; i += 2) {
    merges.push(`${model.tokens[model.merges[i]]} ${model.tokens[model.merges[i + 1]]}`);
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: Object.entries(model.specialTokens).map(([content, id]) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}
