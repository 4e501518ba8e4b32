/**
 * A hand-built GPTModel for generation tests: its "KV cache" keeps each row's token ids, and
 * forwardCached returns logits computed by a plain function of the row's cached tokens (e.g. the
 * log-probabilities of a Markov chain keyed by the last one or two tokens). Reordering copies rows,
 * so a beam search that reorders wrongly sees the wrong context and scores its hypotheses wrongly.
 * Only the inference surface is implemented; everything else throws.
 */
import type { Backend, Tensor } from '../../src/backend/contract.js';
import type { GPTConfig, GPTModel, KVCache } from '../../src/model/types.js';
import { DISPOSE } from '../../src/util/dispose.js';

export type LogitsFn = (row: readonly number[]) => ArrayLike<number>;

export interface FakeModel extends GPTModel {
  /** caches created and not yet freed */
  readonly liveCaches: number;
  /** every forwardCached call: rows, new positions, cache length before */
  readonly calls: { batchSize: number; Tn: number; startLength: number }[];
  reorders: number;
}

const fakeTensor: Tensor = { dtype: 'f32', offset: 0, length: 0 };

export function fakeModel(vocabSize: number, maxSeqLen: number, logitsOf: LogitsFn): FakeModel {
  const rowsOf = new WeakMap<KVCache, number[][]>();
  const config: GPTConfig = { vocabSize, maxSeqLen, dModel: 4, nLayers: 1, nHeads: 1, dFF: 16, dropout: 0, seed: 0 };
  let live = 0;
  const calls: FakeModel['calls'] = [];
  const unsupported = (what: string) => () => {
    throw new Error(`fakeModel: ${what} is not part of the fake`);
  };

  const model = {
    config,
    backendName: 'js',
    backend: {} as Backend,
    paramLayout: [],
    params: fakeTensor,
    grads: fakeTensor,
    calls,
    reorders: 0,
    get liveCaches() {
      return live;
    },
    numParameters: () => 0,
    dispose: () => {},
    forward: unsupported('forward'),
    backward: unsupported('backward'),
    zeroGrad: unsupported('zeroGrad'),
    getParameters: unsupported('getParameters'),
    getGradients: unsupported('getGradients'),
    setParameters: unsupported('setParameters'),
    getRngState: () => ({ dropoutStep: 0 }),
    setRngState: () => {},

    createKVCache(batchSize: number, capacity = maxSeqLen): KVCache {
      const dispose = () => {
        if (!rowsOf.delete(cache)) throw new Error('fakeModel: cache freed twice');
        live--;
      };
      const cache: KVCache = { batchSize, capacity, length: 0, layers: [{ k: fakeTensor, v: fakeTensor }], dispose, [DISPOSE]: dispose };
      rowsOf.set(
        cache,
        Array.from({ length: batchSize }, () => []),
      );
      live++;
      return cache;
    },

    async forwardCached(cache: KVCache, ids: Int32Array, Tn: number): Promise<Float32Array> {
      const rows = rowsOf.get(cache);
      if (!rows) throw new Error('fakeModel: cache was freed');
      if (ids.length !== cache.batchSize * Tn) throw new Error(`fakeModel: ids.length ${ids.length} != batchSize * Tn`);
      if (cache.length + Tn > cache.capacity)
        throw new Error(`fakeModel: cache.length ${cache.length} + Tn ${Tn} > capacity ${cache.capacity}`);
      calls.push({ batchSize: cache.batchSize, Tn, startLength: cache.length });
      const out = new Float32Array(cache.batchSize * vocabSize);
      for (let r = 0; r < cache.batchSize; r++) {
        for (let t = 0; t < Tn; t++) {
          const id = ids[r * Tn + t];
          if (!(id >= 0 && id < vocabSize)) throw new Error(`fakeModel: id ${id} out of range`);
          rows[r].push(id);
        }
        out.set(Array.from(logitsOf(rows[r])), r * vocabSize);
      }
      cache.length += Tn;
      return out;
    },

    reorderKVCache(cache: KVCache, sources: readonly number[]): void {
      const rows = rowsOf.get(cache);
      if (!rows) throw new Error('fakeModel: cache was freed');
      if (sources.length !== cache.batchSize) throw new Error('fakeModel: sources.length != batchSize');
      rowsOf.set(
        cache,
        sources.map((s) => [...rows[s]]),
      );
      model.reorders++;
    },

    moveToBackend(): Promise<void> {
      return Promise.reject(new Error('fakeModel: has no parameters to move'));
    },
  };
  return model as FakeModel;
}

/** logits = log of a transition table row keyed by the last token (0 probability gives -Infinity) */
export function markovLogits(table: Record<number, Record<number, number>>, vocabSize: number): LogitsFn {
  return (row) => {
    const probs = table[row[row.length - 1]] ?? {};
    const logits = new Float64Array(vocabSize).fill(-Infinity);
    for (const [id, p] of Object.entries(probs)) logits[Number(id)] = Math.log(p);
    return logits;
  };
}

/**
 * A byte tokenizer for tests: id = one byte (V = 256, eos = none unless given); the stream decoder is
 * the platform's TextDecoder in streaming mode, so multi-byte characters come out whole.
 */
export function byteTokenizer(eosTokenId?: number) {
  const encoder = new TextEncoder();
  return {
    kind: 'char' as const,
    vocabSize: 256,
    eosTokenId,
    encode: (text: string) => Array.from(encoder.encode(text)),
    decode: (ids: ArrayLike<number>) => new TextDecoder().decode(Uint8Array.from(Array.from(ids))),
    tokenToId: () => undefined,
    idToToken: () => undefined,
    createStreamDecoder() {
      const decoder = new TextDecoder();
      return {
        push: (id: number) => decoder.decode(Uint8Array.of(id), { stream: true }),
        flush: () => decoder.decode(),
      };
    },
    toJSON: () => ({ kind: 'char' as const }),
  };
}

/** A tokenizer of one character per id over `alphabet` (id i is alphabet[i]). */
export function charTokenizer(alphabet: string, eosTokenId?: number) {
  const chars = [...alphabet];
  return {
    kind: 'char' as const,
    vocabSize: chars.length,
    eosTokenId,
    encode: (text: string) => [...text].map((c) => chars.indexOf(c)),
    decode: (ids: ArrayLike<number>) => Array.from(ids, (id) => chars[id]).join(''),
    tokenToId: (token: string) => (chars.includes(token) ? chars.indexOf(token) : undefined),
    idToToken: (id: number) => chars[id],
    createStreamDecoder: () => ({ push: (id: number) => chars[id], flush: () => '' }),
    toJSON: () => ({ kind: 'char' as const }),
  };
}
