/** Tokenizers back from the JSON that model files and checkpoints store. */
import type { Tokenizer } from './types.js';
import { BPETokenizer } from './bpe.js';
import { CharTokenizer } from './char.js';
import { describe } from '../util/describe.js';
import { parseJsonObject } from './loaders.js';

/** Builds a BPETokenizer or CharTokenizer from `toJSON()` output (object or JSON text). */
export function tokenizerFromJSON(json: string | object): Tokenizer {
  const data = parseJsonObject(json, 'tokenizer');
  switch (data.kind) {
    case 'bpe':
      return BPETokenizer.fromJSON(data);
    case 'char':
      return CharTokenizer.fromJSON(data);
    default:
      throw new Error(`tokenizer: kind is ${describe(data.kind)}; expected "bpe" or "char"`);
  }
}
