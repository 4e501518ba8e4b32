/**
 * Bad input on the generation, tokenizer and parameter entry points: each case below used to fail
 * with an error that did not name the input (or with none), and now fails naming it and its range.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { generate, generateStream } from '../../src/generate/generate.js';
import { createModel } from '../../src/model/create.js';
import { BPETokenizer, CharTokenizer } from '../../src/tokenizer/index.js';

const tokenizer = CharTokenizer.train('abcdefgh\n', { specialTokens: ['<|endoftext|>'] });
const config = { vocabSize: tokenizer.vocabSize, maxSeqLen: 8, dModel: 8, nLayers: 1, nHeads: 2, seed: 3, backend: 'js' as const };

describe('generate options name themselves', () => {
  it.each([
    ['stop: 5', { stop: 5 }, /stop must be a string or an array of strings, got 5/],
    [
      'temperature: 1e-40',
      { doSample: true, temperature: 1e-40 },
      /temperature must be 0 \(greedy\) or a number in \[0\.000001, 1000000\], got 1e-40/,
    ],
    ['repetitionPenalty: 1e-300', { repetitionPenalty: 1e-300 }, /repetitionPenalty must be a number in \[0.000001, 1000000\], got 1e-300/],
    ['repetitionPenalty: 1e300', { repetitionPenalty: 1e300 }, /repetitionPenalty must be a number in/],
  ])('%s', async (_label, options, message) => {
    const model = await createModel(config);
    await expect(generate(model, 'ab', { tokenizer, ...options } as never)).rejects.toThrow(message);
  });
});

describe('a tokenizer smaller than the model vocabulary (a padded vocabulary)', () => {
  it('never samples an id the tokenizer cannot decode', async () => {
    const model = await createModel({ ...config, vocabSize: tokenizer.vocabSize + 40 });
    // high temperature: without the ban most draws would fall in the 40 padded ids
    const result = await generate(model, 'ab', { tokenizer, doSample: true, temperature: 50, maxNewTokens: 40, seed: 1 });
    expect(result.ids.length).toBeGreaterThan(0);
    expect(Math.max(...result.ids)).toBeLessThan(tokenizer.vocabSize);
    expect(typeof result.text).toBe('string');
  });
});

describe('setParameters checks every value', () => {
  it('refuses strings and NaN naming the tensor and element, and leaves the model as it was', async () => {
    const model = await createModel(config);
    const before = await model.getParameters();
    const withString = { ...before, 'ln_f.bias': Array.from(before['ln_f.bias'], () => 'x') as unknown as Float32Array };
    await expect(model.setParameters(withString)).rejects.toThrow(/setParameters: ln_f\.bias\[0\] must be a finite number, got "x"/);
    const withNaN = { ...before, 'wpe.weight': Float32Array.from(before['wpe.weight']) };
    withNaN['wpe.weight'][5] = NaN;
    await expect(model.setParameters(withNaN)).rejects.toThrow(/wpe\.weight\[5\] must be a finite number, got NaN/);
    expect(await model.getParameters()).toEqual(before);
  });
});

describe('tokenizer loaders refuse ids they cannot hold instead of dropping them', () => {
  it('a vocab.json id of 2^32 - 1 is refused naming the token', () => {
    const vocab: Record<string, number> = {};
    for (let b = 0; b < 256; b++) vocab[String(b)] = b;
    expect(() => BPETokenizer.fromGPT2({ ...vocab, big: 2 ** 32 - 1 }, '')).toThrow(
      /token "big" has id 4294967295; ids must be integers in \[0, 2097152\)/,
    );
  });

  it('a tiktoken rank of 1e12 is refused naming the line', () => {
    const lines = ['QQ== 0', 'Qg== 1000000000000'];
    expect(() => BPETokenizer.fromTiktoken(lines.join('\n'))).toThrow(/tiktoken line 2: rank 1000000000000 is out of range/);
  });

  it('specialTokens: "abc" names the option', () => {
    expect(() => BPETokenizer.train('abc', { vocabSize: 300, specialTokens: 'abc' as never })).toThrow(
      /specialTokens: expected an array of strings/,
    );
    expect(() => CharTokenizer.train('abc', { specialTokens: 'abc' as never })).toThrow(/specialTokens: expected an array of strings/);
  });

  it('a 200 KB special token fails with a short error naming specialTokens, not a 10 MB regex', () => {
    const huge = 'x'.repeat(200_000);
    const error = (() => {
      try {
        BPETokenizer.train('abc', { vocabSize: 300, specialTokens: [huge] });
      } catch (err) {
        return err as Error;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(RangeError);
    expect(error!.message).toMatch(/^specialTokens: 1 special token\(s\) of 200000 characters in total; at most 65536/);
    expect(error!.message.length).toBeLessThan(300);
  });
});

describe('an abandoned generateStream', () => {
  it('frees its KV cache once the stream object is collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const model = await createModel(config);
    await generate(model, 'ab', { tokenizer, maxNewTokens: 3 }); // the inference scratch stays allocated
    const before = model.backend.bytesInUse();
    await (async () => {
      const stream = generateStream(model, 'ab', { tokenizer, maxNewTokens: 5 })[Symbol.asyncIterator]();
      await stream.next(); // the cache now exists; the stream is dropped here without return()
    })();
    expect(model.backend.bytesInUse()).toBeGreaterThan(before);
    for (let i = 0; i < 100 && model.backend.bytesInUse() > before; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(model.backend.bytesInUse()).toBe(before);
  });
});
