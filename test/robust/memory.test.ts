/**
 * Capacity checked before allocating, and failures that leave the model usable with its memory
 * returned: before, a too-large generate or train left the model broken ("view: t belongs to a
 * buffer that was freed") and the arena full, and the js backend grew without bound.
 */
import { describe, expect, it } from 'vitest';
import { allOrNothing } from '../../src/backend/all-or-nothing.js';
import { BackendUnavailableError } from '../../src/backend/select.js';
import { ArenaLimitError } from '../../src/backend/wasm/index.js';
import { generate } from '../../src/generate/generate.js';
import { createModel } from '../../src/model/create.js';
import { train } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';

const config = { vocabSize: 11, maxSeqLen: 64, dModel: 32, nLayers: 2, nHeads: 2, seed: 7 };

function tokens(n: number): Int32Array {
  const rng = new Rng(3, 1);
  return Int32Array.from({ length: n }, () => rng.nextInt(11));
}

describe.each(['js', 'wasm'] as const)('%s backend', (backend) => {
  it('a generate whose KV cache cannot fit is refused before allocating, naming batchSize; the model generates on', async () => {
    const model = await createModel({ ...config, backend });
    const ok = await generate(model, [1, 2], { maxNewTokens: 4 });
    const before = model.backend.bytesInUse();
    // the cache holds the prompt and the new tokens, 2 + 60 positions:
    // 200000 rows x 2 layers x (k, v) x 62 positions x 32 channels x 4 bytes = 6.3 GB
    await expect(generate(model, [1, 2], { doSample: true, numReturnSequences: 200_000, maxNewTokens: 60, seed: 1 })).rejects.toThrow(
      /createKVCache: batchSize = 200000 \(x capacity 62 positions\) needs 5\.\d+ GiB more, but the (js|wasm) backend has room for/,
    );
    expect(model.backend.bytesInUse()).toBe(before);
    expect(await generate(model, [1, 2], { maxNewTokens: 4 })).toEqual(ok);
  });

  it('train with batchSize 1e9 is refused up front naming batchSize, and the model trains on', async () => {
    const model = await createModel({ ...config, backend });
    const data = tokens(400);
    const before = model.backend.bytesInUse();
    await expect(train(model, { data, batchSize: 1e9, steps: 1, seqLen: 8 })).rejects.toThrow(
      /^batchSize = 1000000000 \(x seqLen 8\) needs [\d.]+ [GT]iB for one step's activations and the optimizer state, but the (js|wasm) backend has room for/,
    );
    expect(model.backend.bytesInUse()).toBe(before);
    await expect(train(model, { data, batchSize: 2, steps: 2, seqLen: 8 })).resolves.toMatchObject({ steps: 2 });
  });
});

describe.each(['js', 'wasm'] as const)('createModel on the %s backend counts everything the smallest step holds', (backend) => {
  it('V 196,608 x C 1,024 is refused up front: the head transposed and its gradient take 1.5 GiB beyond the parameters and moments', async () => {
    // parameters, gradients and moments alone are 3.2 GiB and passed; train then failed at 4.28 GB
    const big = { vocabSize: 196_608, maxSeqLen: 8, dModel: 1024, nLayers: 1, nHeads: 8, seed: 1 };
    const error = await createModel(big, { backend }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as Error).message).toMatch(
      /backend can hold at most 4\.0 GiB, but this model needs 4\.[6-9] GiB for parameters, gradients, optimizer state, the head's transposed copy/,
    );
  });
});

describe('allOrNothing', () => {
  it('frees what was allocated when the build throws part-way (an ArenaLimitError in the middle)', async () => {
    const model = await createModel({ ...config, backend: 'wasm' });
    const b = model.backend;
    const before = b.bytesInUse();
    expect(() =>
      allOrNothing(b, (allocator) => {
        allocator.alloc(1000, 'f32');
        allocator.alloc(5000, 'f32');
        throw new ArenaLimitError('wasm arena: cannot allocate');
      }),
    ).toThrow(ArenaLimitError);
    expect(b.bytesInUse()).toBe(before);
    // and keeps them when it succeeds
    const [t] = allOrNothing(b, (allocator) => [allocator.alloc(100, 'f32')]);
    expect(b.bytesInUse()).toBeGreaterThan(before);
    b.free(t);
  });
});
