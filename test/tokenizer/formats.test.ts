/**
 * Saving and loading: toJSON/fromJSON, tokenizerFromJSON, Hugging Face tokenizer.json, GPT-2
 * files, and clear errors for malformed input of every format.
 */
import { describe, expect, it } from 'vitest';
import { BPETokenizer, CharTokenizer, tokenizerFromJSON, type BPETokenizerJSON } from '../../src/tokenizer/index.js';
import { gpt2VocabJson, loadFromTiktoken, mobyDick } from './fixtures.js';

const sample = mobyDick().slice(0, 40_000);
const trained = BPETokenizer.train(sample, { vocabSize: 600, specialTokens: ['<|endoftext|>', '<|pad|>'] });
const probe = `${sample.slice(5_000, 9_000)} Naïve café — 😀 <|endoftext|><|pad|>`;

/** the same tokenizer as GPT-2 style files: vocab.json text and merges.txt text */
function asGPT2Files(t: BPETokenizer): { vocab: string; merges: string } {
  const hf = t.toHuggingFaceJSON() as { model: { vocab: Record<string, number>; merges: string[] } };
  return { vocab: JSON.stringify(hf.model.vocab), merges: `#version: 0.2\n${hf.model.merges.join('\n')}\n` };
}

const sameEncoding = (a: BPETokenizer, b: BPETokenizer): void => {
  expect(b.vocabSize).toBe(a.vocabSize);
  expect(b.eosTokenId).toBe(a.eosTokenId);
  expect(b.encode(probe)).toEqual(a.encode(probe));
  expect(b.encode(probe, { allowedSpecial: 'all' })).toEqual(a.encode(probe, { allowedSpecial: 'all' }));
};

describe('toJSON / fromJSON', () => {
  it('round-trips a trained BPE tokenizer through JSON text', () => {
    const json = JSON.parse(JSON.stringify(trained.toJSON())) as BPETokenizerJSON;
    expect(json.kind).toBe('bpe');
    const back = BPETokenizer.fromJSON(json);
    sameEncoding(trained, back);
    expect(back.toJSON()).toEqual(trained.toJSON());
    sameEncoding(trained, tokenizerFromJSON(JSON.stringify(json)) as BPETokenizer);
  });

  it('round-trips GPT-2 (tiktoken-derived merges) through JSON', () => {
    const gpt2 = loadFromTiktoken();
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(gpt2.toJSON())));
    expect(back.encode(sample)).toEqual(gpt2.encode(sample));
    expect(back.eosTokenId).toBe(50256);
  });

  it('builds a char tokenizer from its JSON', () => {
    const chars = CharTokenizer.train(['anna', 'bob'], { specialTokens: ['<|endoftext|>'] });
    const back = tokenizerFromJSON(JSON.stringify(chars.toJSON()));
    expect(back.kind).toBe('char');
    expect(back.encode('bob<|endoftext|>', { allowedSpecial: 'all' })).toEqual([1, 3, 1, 4]);
    expect(back.toJSON()).toEqual(chars.toJSON());
  });

  it('rejects malformed JSON with errors naming the field', () => {
    const good = trained.toJSON();
    const appended = good.merges.length / 2;
    expect(() => tokenizerFromJSON({ kind: 'wordpiece' })).toThrow(/kind is "wordpiece"; expected "bpe" or "char"/);
    expect(() => tokenizerFromJSON('{oops')).toThrow(/tokenizer: not valid JSON/);
    expect(() => tokenizerFromJSON([])).toThrow(/expected a JSON object, got an array/);
    expect(() => BPETokenizer.fromJSON({ ...good, version: 2 })).toThrow(/version is 2; only 1/);
    expect(() => BPETokenizer.fromJSON({ ...good, pattern: 'cl100k' })).toThrow(/pattern .*only "gpt2"/);
    expect(() => BPETokenizer.fromJSON({ ...good, tokens: 'abc' })).toThrow(/tokens must be an array/);
    expect(() => BPETokenizer.fromJSON({ ...good, merges: [...good.merges, 99_999, 1] })).toThrow(
      `merges[${appended}]: id 99999 is not an ordinary token id in [0, 600)`,
    );
    expect(() => BPETokenizer.fromJSON({ ...good, merges: [...good.merges, 1] })).toThrow(/odd length/);
    // a repeated merge is harmless: the first one keeps its rank
    const repeated = BPETokenizer.fromJSON({ ...good, merges: [...good.merges, good.merges[0], good.merges[1]] });
    expect(repeated.encode(probe)).toEqual(trained.encode(probe));
    expect(() => BPETokenizer.fromJSON({ ...good, merges: [...good.merges, 120, 122] })).toThrow(
      `merges[${appended}]: the merged token "xz" is not in the vocabulary`,
    );
    const tokens = [...good.tokens];
    tokens[10] = 'not byte level ☃';
    expect(() => BPETokenizer.fromJSON({ ...good, tokens })).toThrow(/tokens\[10\]: .* not spelled in GPT-2's byte alphabet/);
    const withoutByte = [...good.tokens];
    withoutByte[0x21] = 'ĀĀĀĀ';
    expect(() => BPETokenizer.fromJSON({ ...good, tokens: withoutByte })).toThrow(
      'tokens: no token for byte 0x21 (spelled "!"); a byte-level vocabulary needs all 256 bytes',
    );
    expect(() => BPETokenizer.fromJSON({ ...good, specialTokens: { '<|endoftext|>': 900 } })).toThrow(
      /specialTokens: "<\|endoftext\|>" has id 900; ids must be integers in \[0, 600\)/,
    );
    expect(() => CharTokenizer.fromJSON({ kind: 'char', version: 1, chars: ['a', 'bc'], specialTokens: {} })).toThrow(
      /chars\[1\]: expected a single code point/,
    );
    expect(() => CharTokenizer.fromJSON({ kind: 'char', version: 1, chars: ['a'], specialTokens: { x: 5 } })).toThrow(
      /specialTokens "x" has id 5; ids must be in \[1, 2\)/,
    );
  });
});

describe('Hugging Face tokenizer.json', () => {
  it('exports the GPT-2 layout and loads it back to the same tokenizer', () => {
    const gpt2 = loadFromTiktoken();
    const hf = gpt2.toHuggingFaceJSON() as {
      model: { type: string; vocab: Record<string, number>; merges: string[] };
      pre_tokenizer: { type: string; add_prefix_space: boolean };
      added_tokens: { id: number; content: string; special: boolean }[];
    };
    expect(hf.model.type).toBe('BPE');
    expect(hf.pre_tokenizer).toMatchObject({ type: 'ByteLevel', add_prefix_space: false });
    expect(hf.added_tokens).toEqual([expect.objectContaining({ id: 50256, content: '<|endoftext|>', special: true })]);
    // the vocabulary is GPT-2's vocab.json exactly
    expect(hf.model.vocab).toEqual(JSON.parse(gpt2VocabJson()));
    const back = BPETokenizer.fromHuggingFace(JSON.stringify(hf));
    expect(back.encode(sample)).toEqual(gpt2.encode(sample));
    expect(back.eosTokenId).toBe(50256);
  });

  it('round-trips a trained tokenizer, with merges as strings or as pairs', () => {
    const hf = trained.toHuggingFaceJSON() as { model: { merges: string[] } };
    sameEncoding(trained, BPETokenizer.fromHuggingFace(hf));
    const pairs = { ...hf, model: { ...hf.model, merges: hf.model.merges.map((m) => m.split(' ')) } };
    sameEncoding(trained, BPETokenizer.fromHuggingFace(pairs));
  });

  it('loads a hand-written tokenizer.json and applies its merges', () => {
    // bytes take GPT-2's ids (from GPT-2's own encoder.json); then three merges and one special
    const gpt2Vocab = JSON.parse(gpt2VocabJson()) as Record<string, number>;
    const vocab: Record<string, number> = {};
    for (const [token, id] of Object.entries(gpt2Vocab)) if (id < 256) vocab[token] = id;
    Object.assign(vocab, { Ġt: 256, he: 257, Ġthe: 258, '<|endoftext|>': 259 });
    const json = {
      version: '1.0',
      added_tokens: [{ id: 259, content: '<|endoftext|>', special: true }],
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      decoder: { type: 'ByteLevel' },
      model: { type: 'BPE', dropout: null, unk_token: null, vocab, merges: ['Ġ t', 'h e', 'Ġt he'] },
    };
    const t = BPETokenizer.fromHuggingFace(json);
    const id = (ch: string): number => gpt2Vocab[ch];
    expect(t.encode(' the')).toEqual([258]);
    expect(t.encode('the them')).toEqual([id('t'), 257, 258, id('m')]);
    expect(t.encode('the<|endoftext|>', { allowedSpecial: 'all' })).toEqual([id('t'), 257, 259]);
    expect(t.eosTokenId).toBe(259);
  });

  it('rejects tokenizer.json it cannot reproduce, saying why', () => {
    const hf = trained.toHuggingFaceJSON() as Record<string, unknown> & { model: Record<string, unknown> };
    expect(() => BPETokenizer.fromHuggingFace({ ...hf, model: { ...hf.model, type: 'WordPiece' } })).toThrow(
      /model.type is "WordPiece"; only "BPE"/,
    );
    expect(() => BPETokenizer.fromHuggingFace({ ...hf, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true } })).toThrow(
      /pre_tokenizer.add_prefix_space is true/,
    );
    expect(() => BPETokenizer.fromHuggingFace({ ...hf, pre_tokenizer: { type: 'Whitespace' } })).toThrow(
      /pre_tokenizer must be \{"type": "ByteLevel"\}/,
    );
    expect(() => BPETokenizer.fromHuggingFace({ ...hf, normalizer: { type: 'NFC' } })).toThrow(/normalizer/);
    expect(() => BPETokenizer.fromHuggingFace({ ...hf, model: { ...hf.model, merges: ['a b c'] } })).toThrow(
      /model.merges\[0\]: expected "left right"/,
    );
    expect(() => BPETokenizer.fromHuggingFace({ ...hf, model: { ...hf.model, merges: ['x ☃'] } })).toThrow(
      /model.merges\[0\]: token "☃" is not in the vocab/,
    );
    expect(() => BPETokenizer.fromHuggingFace({ ...hf, added_tokens: [{ id: 5, content: '<|x|>', special: true }] })).toThrow(
      /added_tokens\[0\] gives id 5 to "<\|x\|>", but model.vocab has/,
    );
    expect(() => BPETokenizer.fromHuggingFace({ ...hf, model: { ...hf.model, vocab: { a: -1 } } })).toThrow(
      /model.vocab token "a" has id -1; ids must be integers >= 0/,
    );
    expect(() => BPETokenizer.fromHuggingFace('not json')).toThrow(/tokenizer.json: not valid JSON/);
  });
});

describe('GPT-2 vocab.json + merges.txt', () => {
  it('loads files written from a trained tokenizer (vocab as text or object)', () => {
    const { vocab, merges } = asGPT2Files(trained);
    sameEncoding(trained, BPETokenizer.fromGPT2(vocab, merges));
    sameEncoding(trained, BPETokenizer.fromGPT2(JSON.parse(vocab), merges.replace(/\n/g, '\r\n')));
  });

  it('rejects malformed vocab and merges with the line or token at fault', () => {
    const { vocab, merges } = asGPT2Files(trained);
    const vocabObject = JSON.parse(vocab) as Record<string, number>;
    expect(() => BPETokenizer.fromGPT2('{"a": 0,', merges)).toThrow(/vocab: not valid JSON/);
    expect(() => BPETokenizer.fromGPT2({ ...vocabObject, extra: 700 }, merges)).toThrow(
      /vocab: ids must run from 0 to 700 without gaps; id 600 is missing/,
    );
    expect(() => BPETokenizer.fromGPT2({ ...vocabObject, extra: 1.5 }, merges)).toThrow(/token "extra" has id 1.5/);
    expect(() => BPETokenizer.fromGPT2({ ...vocabObject, extra: 3 }, merges)).toThrow(/id 3 is given to both/);
    const lines = merges.split('\n');
    lines[3] = 'onlyone';
    expect(() => BPETokenizer.fromGPT2(vocab, lines.join('\n'))).toThrow(
      /merges line 4: expected two tokens separated by one space, got "onlyone"/,
    );
    lines[3] = 'Ġ ☃';
    expect(() => BPETokenizer.fromGPT2(vocab, lines.join('\n'))).toThrow(/merges line 4: token "☃" is not in the vocab/);
    lines[3] = 'q z';
    expect(() => BPETokenizer.fromGPT2(vocab, lines.join('\n'))).toThrow(/merges line 4: the merged token "qz"/);
    expect(() => BPETokenizer.fromGPT2(vocab, 42 as unknown as string)).toThrow(/merges: expected the text/);
  });
});

describe('tiktoken files', () => {
  const lines = Array.from({ length: 256 }, (_, b) => `${Buffer.from([b]).toString('base64')} ${b}`);

  it('loads a small rank file and merges by rank', () => {
    const ab = Buffer.from('ab').toString('base64');
    const abc = Buffer.from('abc').toString('base64');
    const t = BPETokenizer.fromTiktoken([...lines, `${ab} 256`, `${abc} 257`].join('\n'), {
      specialTokens: { '<|eot|>': 258 },
    });
    expect(t.encode('abcab')).toEqual([257, 256]);
    expect(t.vocabSize).toBe(259);
    expect(t.eosTokenId).toBeUndefined();
    expect(t.encode('<|eot|>', { allowedSpecial: 'all' })).toEqual([258]);
  });

  it('rejects malformed rank files naming the line', () => {
    expect(() => BPETokenizer.fromTiktoken([...lines, 'YWI= x'].join('\n'))).toThrow(
      /tiktoken line 257: expected "<base64 token> <rank>", got "YWI= x"/,
    );
    expect(() => BPETokenizer.fromTiktoken([...lines, '%%% 256'].join('\n'))).toThrow(/tiktoken line 257: "%%%" is not a base64 token/);
    expect(() => BPETokenizer.fromTiktoken([...lines, 'YWI= 255'].join('\n'))).toThrow(/tiktoken line 257: rank 255 is given twice/);
    expect(() => BPETokenizer.fromTiktoken([...lines, 'YWI= 300'].join('\n'))).toThrow(
      /tiktoken: ids must run from 0 to 300 without gaps; id 256 is missing/,
    );
    expect(() =>
      BPETokenizer.fromTiktoken(
        lines
          .slice(1)
          .map((l, i) => l.replace(/\d+$/, String(i)))
          .join('\n'),
      ),
    ).toThrow(/no token for byte 0x00/);
    expect(() => BPETokenizer.fromTiktoken(lines.join('\n'), { specialTokens: { '<|x|>': 3 } })).toThrow(
      /specialTokens: "<\|x\|>" has id 3; special ids must be integers in \[256, 2097152\)/,
    );
  });
});

describe('errors in use', () => {
  it('decode rejects ids outside the vocabulary, naming the id, its index and the range', () => {
    expect(() => trained.decode([1, 600])).toThrow(RangeError);
    expect(() => trained.decode([1, 600])).toThrow('decode: id 600 at index 1 is outside [0, 600)');
    expect(() => trained.decode([-1])).toThrow('decode: id -1 at index 0 is outside [0, 600)');
    expect(() => trained.decode([2.5])).toThrow(/id 2.5/);
    expect(() => trained.decode([Number.NaN])).toThrow(/id NaN/);
    expect(trained.decode(new Int32Array([72, 105]))).toBe('Hi');
  });

  it('encode rejects unknown allowed special tokens and non-string text', () => {
    expect(() => trained.encode('x', { allowedSpecial: ['<|nope|>'] })).toThrow(
      /allowedSpecial: "<\|nope\|>" is not a special token of this tokenizer/,
    );
    expect(() => trained.encode(42 as unknown as string)).toThrow(/encode: text must be a string, got number 42|got 42/);
  });
});
