import type { BackendChoice, GPTConfig, GPTConfigInput } from './types.js';
import { describe } from '../util/describe.js';

export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'js', 'wasm', 'webgpu'];

/** Upper bounds that keep a typo from asking for terabytes; far above any model this SDK targets. */
const MAX_VOCAB = 1 << 20;
const MAX_SEQ_LEN = 1 << 16;
const MAX_WIDTH = 1 << 16;
const MAX_LAYERS = 1024;

export class ConfigError extends RangeError {
  override name = 'ConfigError';
}

function positiveInt(field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new ConfigError(`config.${field} must be an integer in [1, ${max}], got ${describe(value, REQUIRED)}`);
  }
  return value;
}

const REQUIRED = 'undefined (it is required)';

/** every field a config may have: a misspelt one (dff, nHead) would otherwise leave its default in place in silence */
const CONFIG_FIELDS: Readonly<Record<keyof GPTConfigInput, true>> = {
  vocabSize: true,
  maxSeqLen: true,
  dModel: true,
  nLayers: true,
  nHeads: true,
  dFF: true,
  dropout: true,
  seed: true,
  backend: true,
};

/** Check every field of a user config and fill the defaults. Errors name the field and the allowed range. */
export function validateConfig(input: GPTConfigInput): GPTConfig {
  if (input === null || typeof input !== 'object') throw new ConfigError(`config must be an object, got ${describe(input, REQUIRED)}`);
  for (const key of Object.keys(input)) {
    if (!Object.hasOwn(CONFIG_FIELDS, key)) {
      throw new ConfigError(`config.${key} is not a config field; the fields are ${Object.keys(CONFIG_FIELDS).join(', ')}`);
    }
  }
  const vocabSize = positiveInt('vocabSize', input.vocabSize, MAX_VOCAB);
  const maxSeqLen = positiveInt('maxSeqLen', input.maxSeqLen, MAX_SEQ_LEN);
  const dModel = positiveInt('dModel', input.dModel, MAX_WIDTH);
  const nLayers = positiveInt('nLayers', input.nLayers, MAX_LAYERS);
  const nHeads = positiveInt('nHeads', input.nHeads, dModel);
  if (dModel % nHeads !== 0) {
    throw new ConfigError(`config.dModel (${dModel}) must be divisible by config.nHeads (${nHeads})`);
  }
  const dFF = input.dFF === undefined ? 4 * dModel : positiveInt('dFF', input.dFF, 4 * MAX_WIDTH);
  const dropout = input.dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) {
    throw new ConfigError(`config.dropout must be a number in [0, 1), got ${describe(dropout)}`);
  }
  const seed = input.seed ?? 1337;
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new ConfigError(`config.seed must be an integer in [0, 2^32 - 1], got ${describe(seed)}`);
  }
  const backend = input.backend ?? 'auto';
  if (!BACKEND_CHOICES.includes(backend)) {
    throw new ConfigError(`config.backend must be one of ${BACKEND_CHOICES.map((b) => `'${b}'`).join(', ')}, got ${describe(backend)}`);
  }
  return { vocabSize, maxSeqLen, dModel, nLayers, nHeads, dFF, dropout, seed };
}
