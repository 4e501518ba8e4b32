/**
 * GPT-2-family checkpoints in Hugging Face's published layout, in both directions.
 *
 * Read: `config.json` (model_type "gpt2": gpt2, distilgpt2, gpt2-medium, ... shapes; anything else
 * is refused by name), the weights as `model.safetensors` or sharded through
 * `model.safetensors.index.json`, the tokenizer as `tokenizer.json` or `vocab.json` + `merges.txt`,
 * and `generation_config.json` when present (its defaults come back as tinygpt GenerateOptions).
 *
 * Write: the same files as `save_pretrained` writes them for GPT2LMHeadModel and GPT2TokenizerFast:
 * `transformer.`-prefixed tensor names, no `lm_head.weight` (tied to `transformer.wte.weight`, which
 * from_pretrained re-ties), no attention mask buffers (non-persistent in transformers), metadata
 * `{"format": "pt"}`, F32 or F16 storage, optionally sharded with HF's index file and shard names.
 *
 * Files come through a reader (name -> bytes or undefined when absent), so a folder (Node, see
 * huggingface-node.ts), a Map of name -> Blob/bytes/text, or a base URL all share this code.
 */
import { checkModelArgument, checkOptionNames, type OptionNames } from '../util/arguments.js';
import type { GPTConfigInput, GPTModel } from '../model/types.js';
import type { GenerateOptions } from '../generate/options.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { BPETokenizer } from '../tokenizer/bpe.js';
import { ModelFileError } from './errors.js';
import {
  checkTokenizerFits,
  LOAD_MODEL_OPTIONS,
  modelFromTensors,
  storageDType,
  type LoadedModel,
  type LoadModelOptions,
} from './model-file.js';
import { decodeSafetensors, dtypeByteSize, encodeSafetensors, type DecodedTensor, type TensorInput } from './safetensors.js';
import { describe } from '../util/describe.js';

/** reads one file of a checkpoint by name; resolves undefined when the file does not exist */
export type HuggingFaceFileReader = (name: string) => Promise<Uint8Array | undefined>;

/** what a Map of files may hold per name */
export type HuggingFaceFileValue = Uint8Array | ArrayBuffer | Blob | string;

/** a reader, a Map of file name -> contents, or the base URL of a folder (fetched file by file) */
export type HuggingFaceSource = HuggingFaceFileReader | Map<string, HuggingFaceFileValue> | string | URL;

export interface LoadHuggingFaceOptions extends LoadModelOptions {
  /** the fetch to use for a URL source (default globalThis.fetch) */
  fetch?: typeof fetch;
  /** passed to fetch for a URL source */
  init?: RequestInit;
}

export interface LoadedHuggingFace extends LoadedModel {
  /** generation_config.json's defaults as tinygpt options (empty when there is no such file) */
  generation: GenerateOptions;
  /** config.json as read */
  huggingFaceConfig: Record<string, unknown>;
}

export interface ExportHuggingFaceOptions {
  /** written as tokenizer.json, vocab.json + merges.txt, tokenizer_config.json, special_tokens_map.json */
  tokenizer?: Tokenizer;
  /** 'float32' (default) or 'float16' (half the bytes; torch_dtype says which) */
  dtype?: 'float32' | 'float16';
  /** cut the weights into shards of at most this many bytes (HF's rule: a tensor never spans two) */
  maxShardBytes?: number;
}

const LOAD_HUGGING_FACE_OPTIONS: OptionNames<LoadHuggingFaceOptions> = { ...LOAD_MODEL_OPTIONS, fetch: true, init: true };
const EXPORT_HUGGING_FACE_OPTIONS: OptionNames<ExportHuggingFaceOptions> = { tokenizer: true, dtype: true, maxShardBytes: true };

export const HF_CONFIG = 'config.json';
export const HF_WEIGHTS = 'model.safetensors';
export const HF_WEIGHTS_INDEX = 'model.safetensors.index.json';
const HF_GENERATION_CONFIG = 'generation_config.json';
const HF_PREFIX = 'transformer.';

type Json = Record<string, unknown>;

const utf8 = new TextDecoder('utf-8', { fatal: true });

// ---------------------------------------------------------------------------------------------
// reading

/** The reader behind any source. */
export function huggingFaceReader(
  source: HuggingFaceSource,
  options: Pick<LoadHuggingFaceOptions, 'fetch' | 'init'> = {},
): HuggingFaceFileReader {
  if (typeof source === 'function') return source;
  if (source instanceof Map) {
    return async (name) => {
      const value = source.get(name);
      if (value === undefined) return undefined;
      if (typeof value === 'string') return new TextEncoder().encode(value);
      if (value instanceof Uint8Array) return value;
      if (value instanceof ArrayBuffer) return new Uint8Array(value);
      if (typeof Blob !== 'undefined' && value instanceof Blob) return new Uint8Array(await value.arrayBuffer());
      throw new TypeError(`file ${name}: expected a Uint8Array, ArrayBuffer, Blob or string`);
    };
  }
  if (typeof source === 'string' || source instanceof URL) {
    const text = String(source);
    const base = text.endsWith('/') ? text : `${text}/`;
    const fetchFn = options.fetch ?? globalThis.fetch;
    if (typeof fetchFn !== 'function') throw new Error('loadHuggingFace: this runtime has no fetch; pass options.fetch');
    return async (name) => {
      const url = new URL(name, base);
      const response = await fetchFn(url, options.init);
      if (response.status === 404) return undefined;
      if (!response.ok) throw new Error(`cannot read ${url.href}: HTTP ${response.status} ${response.statusText}`);
      return new Uint8Array(await response.arrayBuffer());
    };
  }
  throw new TypeError('loadHuggingFace: source must be a reader function, a Map of file name -> contents, or a base URL');
}

async function readJson(read: HuggingFaceFileReader, name: string): Promise<Json | undefined> {
  const bytes = await read(name);
  if (bytes === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(bytes));
  } catch (cause) {
    throw new ModelFileError(`${name} is not valid UTF-8 JSON: ${(cause as Error).message}`, { cause });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ModelFileError(`${name} must hold a JSON object`);
  return parsed as Json;
}

async function readText(read: HuggingFaceFileReader, name: string): Promise<string | undefined> {
  const bytes = await read(name);
  if (bytes === undefined) return undefined;
  try {
    return utf8.decode(bytes);
  } catch (cause) {
    throw new ModelFileError(`${name} is not valid UTF-8`, { cause });
  }
}

/**
 * tinygpt's config from a GPT-2 config.json. Every field that would change what the model computes
 * is checked against what tinygpt implements, and refused with its name and value otherwise.
 */
export function configFromHuggingFace(hf: Json): GPTConfigInput {
  if (hf === null || typeof hf !== 'object' || Array.isArray(hf)) {
    throw new TypeError(`configFromHuggingFace: config must be the object of a config.json; got ${describe(hf)}`);
  }
  const where = HF_CONFIG;
  const modelType = hf.model_type;
  if (modelType !== 'gpt2') {
    throw new ModelFileError(
      `${where}: model_type is ${describe(modelType, 'missing')}; tinygpt loads the GPT-2 family only (model_type "gpt2": gpt2, distilgpt2, gpt2-medium, gpt2-large, gpt2-xl)`,
    );
  }
  const architectures = hf.architectures;
  if (architectures !== undefined && architectures !== null) {
    if (!Array.isArray(architectures) || !architectures.every((a) => typeof a === 'string' && a.startsWith('GPT2'))) {
      throw new ModelFileError(
        `${where}: architectures is ${Array.isArray(architectures) ? JSON.stringify(architectures) : describe(architectures, 'missing')}; only GPT-2 architectures (GPT2LMHeadModel, GPT2Model) load`,
      );
    }
  }
  const expectField = (field: string, allowed: readonly unknown[], fallback: unknown, why: string) => {
    const value = hf[field] ?? fallback;
    if (!allowed.includes(value)) {
      throw new ModelFileError(
        `${where}: ${field} is ${describe(hf[field], 'missing')}; tinygpt supports only ${allowed.map((value) => describe(value)).join(' or ')} (${why})`,
      );
    }
  };
  expectField('activation_function', ['gelu_new', 'gelu_pytorch_tanh'], 'gelu_new', "GELU's tanh form");
  expectField('layer_norm_epsilon', [1e-5], 1e-5, 'LayerNorm eps 1e-5');
  expectField('scale_attn_weights', [true], true, 'attention scaled by 1/sqrt(head size)');
  expectField('scale_attn_by_inverse_layer_idx', [false], false, 'no per-layer attention scaling');
  expectField('add_cross_attention', [false], false, 'decoder-only');
  expectField('tie_word_embeddings', [true], true, 'the LM head is tied to wte');
  const integer = (field: string, ...fallbacks: string[]): number => {
    let value = hf[field];
    for (const other of fallbacks) value ??= hf[other];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new ModelFileError(`${where}: ${field} is ${describe(hf[field], 'missing')}; expected an integer >= 1`);
    }
    return value;
  };
  const dModel = integer('n_embd');
  const inner = hf.n_inner;
  const dFF = inner === null || inner === undefined ? 4 * dModel : integer('n_inner');
  const dropout = hf.resid_pdrop ?? 0.1;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) {
    throw new ModelFileError(`${where}: resid_pdrop is ${describe(hf.resid_pdrop, 'missing')}; expected a number in [0, 1)`);
  }
  return {
    vocabSize: integer('vocab_size'),
    maxSeqLen: integer('n_positions', 'n_ctx'),
    dModel,
    nLayers: integer('n_layer'),
    nHeads: integer('n_head'),
    dFF,
    dropout,
  };
}

/** generation_config.json's fields that tinygpt's generate has, under tinygpt's names. */
export function generationFromHuggingFace(hf: Json): GenerateOptions {
  const out: GenerateOptions = {};
  const pairs: [string, keyof GenerateOptions][] = [
    ['do_sample', 'doSample'],
    ['temperature', 'temperature'],
    ['top_k', 'topK'],
    ['top_p', 'topP'],
    ['min_p', 'minP'],
    ['repetition_penalty', 'repetitionPenalty'],
    ['no_repeat_ngram_size', 'noRepeatNgramSize'],
    ['num_beams', 'numBeams'],
    ['length_penalty', 'lengthPenalty'],
    ['early_stopping', 'earlyStopping'],
    ['max_new_tokens', 'maxNewTokens'],
    ['min_new_tokens', 'minNewTokens'],
    ['bos_token_id', 'bosTokenId'],
  ];
  for (const [hfName, name] of pairs) {
    const value = hf[hfName];
    if (typeof value === 'number' || typeof value === 'boolean') (out as Record<string, unknown>)[name] = value;
  }
  // tinygpt takes one eos id; HF allows a list, whose first is the tokenizer's own
  const eos = Array.isArray(hf.eos_token_id) ? (hf.eos_token_id as unknown[])[0] : hf.eos_token_id;
  if (typeof eos === 'number') out.eosTokenId = eos;
  return out;
}

/** The weights' tensors, from one file or from the shards an index names. */
async function readWeights(read: HuggingFaceFileReader): Promise<Record<string, DecodedTensor>> {
  const single = await read(HF_WEIGHTS);
  if (single !== undefined) return decodeSafetensors(single).tensors;
  const index = await readJson(read, HF_WEIGHTS_INDEX);
  if (index === undefined) {
    const pickle = (await read('pytorch_model.bin')) !== undefined;
    throw new ModelFileError(
      `no ${HF_WEIGHTS} or ${HF_WEIGHTS_INDEX}${pickle ? ' (only pytorch_model.bin, a pickle, which tinygpt does not read: save it with safe_serialization=True)' : ''}`,
    );
  }
  const weightMap = index.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw new ModelFileError(`${HF_WEIGHTS_INDEX}: weight_map must be an object of tensor name -> shard file name`);
  }
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap as Json)) {
    if (typeof shard !== 'string' || shard === '' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
      throw new ModelFileError(
        `${HF_WEIGHTS_INDEX}: weight_map[${JSON.stringify(name)}] is ${describe(shard, 'missing')}; expected a file name in the same folder`,
      );
    }
    byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  }
  const tensors: Record<string, DecodedTensor> = {};
  for (const [shard, names] of byShard) {
    const bytes = await read(shard);
    if (bytes === undefined) throw new ModelFileError(`${HF_WEIGHTS_INDEX} names shard ${shard}, which is missing`);
    const decoded = decodeSafetensors(bytes).tensors;
    for (const name of names) {
      const tensor = decoded[name];
      if (tensor === undefined) throw new ModelFileError(`${HF_WEIGHTS_INDEX} puts ${name} in ${shard}, which does not hold it`);
      Object.defineProperty(tensors, name, { value: tensor, enumerable: true, writable: true, configurable: true });
    }
  }
  return tensors;
}

async function readTokenizer(read: HuggingFaceFileReader): Promise<Tokenizer | undefined> {
  try {
    const json = await readText(read, 'tokenizer.json');
    if (json !== undefined) return BPETokenizer.fromHuggingFace(json);
    const vocab = await readText(read, 'vocab.json');
    const merges = await readText(read, 'merges.txt');
    if (vocab !== undefined && merges !== undefined) return BPETokenizer.fromGPT2(vocab, merges);
    if (vocab !== undefined || merges !== undefined) {
      throw new Error(`${vocab === undefined ? 'vocab.json' : 'merges.txt'} is missing (the other of the pair is there)`);
    }
    return undefined;
  } catch (cause) {
    if (cause instanceof ModelFileError) throw cause;
    throw new ModelFileError(`the tokenizer cannot be read: ${(cause as Error).message}`, { cause });
  }
}

/**
 * A GPT-2-family model (and its tokenizer and generation defaults, when the files have them) from
 * Hugging Face's files. `options.config` overrides config.json's fields (e.g. `dropout`).
 */
export async function loadHuggingFace(source: HuggingFaceSource, options: LoadHuggingFaceOptions = {}): Promise<LoadedHuggingFace> {
  checkOptionNames(options, LOAD_HUGGING_FACE_OPTIONS, 'loadHuggingFace');
  const read = huggingFaceReader(source, options);
  const hfConfig = await readJson(read, HF_CONFIG);
  if (hfConfig === undefined) throw new ModelFileError(`${HF_CONFIG} is missing: it says which architecture the weights are`);
  const fileConfig = configFromHuggingFace(hfConfig);
  const generationFile = await readJson(read, HF_GENERATION_CONFIG);
  const tokenizer = await readTokenizer(read);
  const tensors = await readWeights(read);
  const model = await modelFromTensors(tensors, fileConfig, false, options);
  try {
    if (tokenizer !== undefined) checkTokenizerFits(tokenizer, model.config);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, tokenizer, generation: generationFile ? generationFromHuggingFace(generationFile) : {}, huggingFaceConfig: hfConfig };
}

// ---------------------------------------------------------------------------------------------
// writing

/** config.json as GPT2Config.save_pretrained writes it for this model. */
export function configToHuggingFace(model: GPTModel, tokenizer: Tokenizer | undefined, dtype: 'F32' | 'F16'): Json {
  checkModelArgument(model, 'configToHuggingFace');
  if (dtype !== 'F32' && dtype !== 'F16') throw new RangeError(`configToHuggingFace: dtype must be 'F32' or 'F16', got ${describe(dtype)}`);
  const { vocabSize, maxSeqLen, dModel, nLayers, nHeads, dFF, dropout } = model.config;
  const eos = tokenizer?.eosTokenId ?? null;
  return {
    activation_function: 'gelu_new',
    architectures: ['GPT2LMHeadModel'],
    // tinygpt has no dropout on attention probabilities
    attn_pdrop: 0,
    bos_token_id: eos,
    embd_pdrop: dropout,
    eos_token_id: eos,
    initializer_range: 0.02,
    layer_norm_epsilon: 1e-5,
    model_type: 'gpt2',
    n_ctx: maxSeqLen,
    n_embd: dModel,
    n_head: nHeads,
    n_inner: dFF === 4 * dModel ? null : dFF,
    n_layer: nLayers,
    n_positions: maxSeqLen,
    reorder_and_upcast_attn: false,
    resid_pdrop: dropout,
    scale_attn_by_inverse_layer_idx: false,
    scale_attn_weights: true,
    summary_activation: null,
    summary_first_dropout: 0.1,
    summary_proj_to_labels: true,
    summary_type: 'cls_index',
    summary_use_proj: true,
    tie_word_embeddings: true,
    torch_dtype: dtype === 'F16' ? 'float16' : 'float32',
    use_cache: true,
    vocab_size: vocabSize,
  };
}

/** vocab.json and merges.txt (GPT-2's slow-tokenizer files) of a byte-level BPE tokenizer. */
export function gpt2TokenizerFiles(tokenizer: BPETokenizer): { vocab: string; merges: string } {
  const { tokens, merges } = tokenizer.toJSON();
  const vocab: Record<string, number> = {};
  tokens.forEach((token, id) => {
    vocab[token] = id;
  });
  const lines = ['#version: 0.2'];
  for (let i = 0; i < merges.length; i += 2) lines.push(`${tokens[merges[i]]} ${tokens[merges[i + 1]]}`);
  return { vocab: JSON.stringify(vocab), merges: lines.join('\n') + '\n' };
}

function tokenizerFiles(tokenizer: Tokenizer, maxSeqLen: number): Map<string, string> {
  if (!(tokenizer instanceof BPETokenizer)) {
    throw new TypeError(
      `exportHuggingFace: a ${tokenizer.kind} tokenizer has no Hugging Face GPT-2 form; only BPETokenizer (byte-level BPE) can be written`,
    );
  }
  const files = new Map<string, string>();
  files.set('tokenizer.json', JSON.stringify(tokenizer.toHuggingFaceJSON()));
  const { vocab, merges } = gpt2TokenizerFiles(tokenizer);
  files.set('vocab.json', vocab);
  files.set('merges.txt', merges);
  const eos = tokenizer.eosTokenId === undefined ? null : tokenizer.idToToken(tokenizer.eosTokenId)!;
  const addedTokensDecoder: Json = {};
  for (const [content, id] of Object.entries(tokenizer.specialTokens)) {
    addedTokensDecoder[String(id)] = { content, lstrip: false, normalized: true, rstrip: false, single_word: false, special: true };
  }
  files.set(
    'tokenizer_config.json',
    JSON.stringify({
      add_bos_token: false,
      add_prefix_space: false,
      added_tokens_decoder: addedTokensDecoder,
      bos_token: eos,
      clean_up_tokenization_spaces: false,
      eos_token: eos,
      errors: 'replace',
      model_max_length: maxSeqLen,
      pad_token: null,
      tokenizer_class: 'GPT2Tokenizer',
      unk_token: eos,
    }),
  );
  files.set('special_tokens_map.json', JSON.stringify(eos === null ? {} : { bos_token: eos, eos_token: eos, unk_token: eos }));
  return files;
}

/** Tensors in shards of at most maxBytes, in the given order (a tensor larger than maxBytes gets its own). */
function shardTensors(tensors: [string, TensorInput, number][], maxBytes: number): [string, TensorInput, number][][] {
  const shards: [string, TensorInput, number][][] = [[]];
  let size = 0;
  for (const entry of tensors) {
    if (size + entry[2] > maxBytes && shards[shards.length - 1].length > 0) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(entry);
    size += entry[2];
  }
  return shards;
}

/**
 * The model (and tokenizer) as Hugging Face's files, by file name: config.json,
 * generation_config.json, model.safetensors (or model-0000i-of-0000n.safetensors + index), and with
 * a tokenizer tokenizer.json, vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json.
 */
export async function exportHuggingFace(model: GPTModel, options: ExportHuggingFaceOptions = {}): Promise<Map<string, Uint8Array>> {
  checkModelArgument(model, 'exportHuggingFace');
  checkOptionNames(options, EXPORT_HUGGING_FACE_OPTIONS, 'exportHuggingFace');
  const dtype = storageDType(options.dtype, 'exportHuggingFace: options.dtype');
  const { maxShardBytes } = options;
  if (maxShardBytes !== undefined && !(Number.isSafeInteger(maxShardBytes) && maxShardBytes >= 1)) {
    throw new RangeError(`exportHuggingFace: options.maxShardBytes must be an integer >= 1, got ${String(maxShardBytes)}`);
  }
  const encoder = new TextEncoder();
  const files = new Map<string, Uint8Array>();
  const text = options.tokenizer === undefined ? new Map<string, string>() : tokenizerFiles(options.tokenizer, model.config.maxSeqLen);
  if (options.tokenizer !== undefined) checkTokenizerFits(options.tokenizer, model.config);

  const hfConfig = configToHuggingFace(model, options.tokenizer, dtype);
  files.set(HF_CONFIG, encoder.encode(JSON.stringify(hfConfig, null, 2) + '\n'));
  const generation: Json = { _from_model_config: true, bos_token_id: hfConfig.bos_token_id, eos_token_id: hfConfig.eos_token_id };
  files.set(HF_GENERATION_CONFIG, encoder.encode(JSON.stringify(generation, null, 2) + '\n'));

  const parameters = await model.getParameters();
  const tensors: [string, TensorInput, number][] = model.paramLayout.map((entry) => [
    HF_PREFIX + entry.name,
    { dtype, shape: entry.shape, data: parameters[entry.name] },
    entry.length * dtypeByteSize(dtype),
  ]);
  const metadata = { format: 'pt' };
  const shards = maxShardBytes === undefined ? [tensors] : shardTensors(tensors, maxShardBytes);
  if (shards.length === 1) {
    files.set(HF_WEIGHTS, encodeSafetensors(Object.fromEntries(shards[0].map(([name, tensor]) => [name, tensor])), metadata));
  } else {
    const weightMap: Record<string, string> = {};
    const total = String(shards.length).padStart(5, '0');
    shards.forEach((shard, i) => {
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${total}.safetensors`;
      for (const [name] of shard) weightMap[name] = file;
      files.set(file, encodeSafetensors(Object.fromEntries(shard.map(([name, tensor]) => [name, tensor])), metadata));
    });
    const totalSize = tensors.reduce((sum, entry) => sum + entry[2], 0);
    files.set(
      HF_WEIGHTS_INDEX,
      encoder.encode(JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n'),
    );
  }
  for (const [name, content] of text) files.set(name, encoder.encode(content));
  return files;
}
