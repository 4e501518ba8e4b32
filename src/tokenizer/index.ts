export type { StreamDecoder, Tokenizer, TokenizerJSON } from './types.js';
export { BPETokenizer, MAX_VOCAB_SIZE } from './bpe.js';
export { END_OF_TEXT } from './specials.js';
export type { BPETokenizerJSON, BPETrainOptions } from './bpe.js';
export { CharTokenizer } from './char.js';
export type { CharTokenizerJSON } from './char.js';
export { tokenizerFromJSON } from './json.js';
export { GPT2_PATTERN_SOURCE, gpt2Pattern, splitGPT2, splitGPT2WithRegex } from './pretokenize.js';
