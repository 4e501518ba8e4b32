/**
 * tinygpt/gpt2: GPT-2's tokenizer with its vocabulary inside the package, no download.
 *
 *   import { gpt2Tokenizer } from 'tinygpt/gpt2';
 *   const tokenizer = await gpt2Tokenizer(); // vocabSize 50257, eosTokenId 50256
 *
 * Its own entry point, so bundles that do not import it carry none of its 215 KB. The vocabulary
 * is GPT-2's 50,000 merges (src/tokenizer/gpt2-vocab.ts, written by scripts/gpt2-vocab.mjs):
 * ids 0-255 are the bytes in GPT-2's order, merge i makes id 256 + i from the two ids it joins,
 * and 50256 is <|endoftext|>; the tokens' spellings follow from the merges. The merges are
 * gzipped, and unpacked with the runtime's DecompressionStream (Node 18+, browsers, Workers).
 */
import { BPETokenizer } from './tokenizer/bpe.js';
import { BYTE_TO_CHAR, decodeBase64 } from './tokenizer/bytes.js';
import { END_OF_TEXT } from './tokenizer/specials.js';
import { GPT2_MERGE_COUNT, GPT2_MERGES_GZIP_BASE64 } from './tokenizer/gpt2-vocab.js';

export { BPETokenizer } from './tokenizer/bpe.js';

let shared: Promise<BPETokenizer> | null = null;

/**
 * GPT-2's byte-level BPE tokenizer (the r50k_base encoding): exactly GPT-2's ids. The first call
 * builds it (about a tenth of a second); later calls resolve to the same instance.
 */
export function gpt2Tokenizer(): Promise<BPETokenizer> {
  shared ??= buildGPT2Tokenizer().catch((err: unknown) => {
    shared = null;
    throw err;
  });
  return shared;
}

async function buildGPT2Tokenizer(): Promise<BPETokenizer> {
  const packed = decodeBase64(GPT2_MERGES_GZIP_BASE64);
  if (packed === null) throw new Error('tinygpt/gpt2: the packed vocabulary is damaged (not base64)');
  const planes = await gunzip(packed);
  const n = GPT2_MERGE_COUNT;
  if (planes.length !== 4 * n)
    throw new Error(`tinygpt/gpt2: the packed vocabulary is damaged (${planes.length} bytes, expected ${4 * n})`);

  // GPT-2 numbers the bytes by their spelling: printable Latin-1 first (spelled as themselves), then the rest (U+0100 on)
  const tokens = [...BYTE_TO_CHAR].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));
  const merges = new Array<number>(2 * n);
  for (let i = 0; i < n; i++) {
    const left = (planes[i] << 8) | planes[n + i];
    const right = (planes[2 * n + i] << 8) | planes[3 * n + i];
    if (left >= tokens.length || right >= tokens.length) throw new Error(`tinygpt/gpt2: the packed vocabulary is damaged (merge ${i})`);
    merges[2 * i] = left;
    merges[2 * i + 1] = right;
    tokens.push(tokens[left] + tokens[right]);
  }
  tokens.push(END_OF_TEXT);
  return BPETokenizer.fromJSON({
    kind: 'bpe',
    version: 1,
    pattern: 'gpt2',
    tokens,
    merges,
    specialTokens: { [END_OF_TEXT]: tokens.length - 1 },
  });
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  if (typeof DecompressionStream !== 'function') {
    throw new Error(
      'tinygpt/gpt2: this runtime has no DecompressionStream (Node 18+, Chrome 80+, Firefox 113+, Safari 16.4+ and Workers have it); ' +
        'load GPT-2 from its files instead with BPETokenizer.fromGPT2(encoderJson, vocabBpe)',
    );
  }
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
