/**
 * Text in, text out with the SDK's own byte-level BPE tokenizer and a real (random) model: the
 * streamed pieces, the result's text and the tokenizer's one-shot decode agree; stop strings cut
 * exactly where the same seeded run without them shows the string first.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { generate, generateStream } from '../../src/generate/generate.js';
import { planGeneration } from '../../src/generate/options.js';
import { createModel } from '../../src/model/create.js';
import type { GPTModel } from '../../src/model/types.js';
import { BPETokenizer } from '../../src/tokenizer/bpe.js';

const corpus = [
  'Héllo wörld! Ça va? Über café, naïve façade. ',
  'Smörgåsbord and crème brûlée; 日本語のテキスト; emoji 🎉🚀 again 🎉. ',
  'The quick brown fox jumps over the lazy dog. ',
]
  .join('')
  .repeat(4);
const tokenizer = BPETokenizer.train(corpus, { vocabSize: 300, specialTokens: ['<|endoftext|>'] });

let model: GPTModel;
afterAll(() => model?.dispose());

async function getModel(): Promise<GPTModel> {
  model ??= await createModel({ vocabSize: tokenizer.vocabSize, maxSeqLen: 32, dModel: 16, nLayers: 1, nHeads: 2, seed: 3, backend: 'js' });
  return model;
}

const sampling = { tokenizer, maxNewTokens: 60, doSample: true, temperature: 1.5, seed: 21 } as const;

describe('generation with a BPE tokenizer', () => {
  it('a text prompt gives text: equal to decoding the new ids, and to the streamed pieces', async () => {
    const m = await getModel();
    const r = await generate(m, 'Héllo wörld', sampling);
    const content = r.ids.filter((id) => id !== tokenizer.eosTokenId);
    expect(r.text).toBe(tokenizer.decode(content));
    expect(r.ids.length).toBeGreaterThan(0);

    const pieces: string[] = [];
    const ids: number[] = [];
    for await (const t of generateStream(m, 'Héllo wörld', sampling)) {
      ids.push(t.id);
      pieces.push(t.text!);
    }
    expect(ids).toEqual(r.ids);
    expect(pieces.join('')).toBe(r.text);
  });

  it('eos defaults to the tokenizer’s <|endoftext|>, and an empty prompt starts from it', async () => {
    const m = await getModel();
    const eos = tokenizer.eosTokenId!;
    expect(eos).toBe(299);
    expect(planGeneration(m, 'x', { tokenizer }).eosTokenId).toBe(eos);
    expect(planGeneration(m, 'x', { tokenizer, eosTokenId: null }).eosTokenId).toBe(null);
    expect(planGeneration(m, '', { tokenizer }).prompt).toEqual([eos]);
    const fromEmpty = await generate(m, '', { ...sampling, maxNewTokens: 10 });
    const fromEos = await generate(m, [eos], { ...sampling, maxNewTokens: 10 });
    expect(fromEmpty.ids).toEqual(fromEos.ids);
  });

  it('stop strings cut where the unconstrained run first shows them', async () => {
    const m = await getModel();
    const free = await generate(m, 'The quick', { ...sampling, eosTokenId: null });
    const text = free.text!;
    expect(text.length).toBeGreaterThan(8);
    // a stop string taken from the middle of the free text: same seed, same tokens up to there
    const stop = text.slice(5, 8);
    const cut = text.indexOf(stop);
    const stopped = await generate(m, 'The quick', { ...sampling, eosTokenId: null, stop: [stop] });
    expect(stopped.text).toBe(text.slice(0, cut));
    expect(stopped.finishReason).toBe('stop');
    expect(free.ids.slice(0, stopped.ids.length)).toEqual(stopped.ids);
    // the ids end with the token that completed the stop string
    expect(tokenizer.decode(stopped.ids)).toContain(stop);
    expect(tokenizer.decode(stopped.ids.slice(0, -1))).not.toContain(stop);
  });
});
