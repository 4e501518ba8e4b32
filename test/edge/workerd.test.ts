/**
 * The bundle in a real edge runtime: Cloudflare's workerd runs examples/edge/worker.js, which imports
 * dist/index.js as the package 'tinygpt' and dist/tinygpt.wasm as a module import (a compiled
 * WebAssembly.Module: workerd, like Cloudflare, refuses to compile bytes), loads a model file bound
 * as bytes, and serves generate over fetch. Node trains and saves that model with the same bundle,
 * then loads the same bytes and generates with the same seed: the worker's ids and text must equal
 * Node's exactly. A Q4_0 file of that model is served unchanged the same way.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type * as TinyGPT from '../../src/index.js';
import { normal32, Rng } from '../helpers/random.js';
import { findWorkerd, importBuiltSDK, namesModelBytes, startWorker, type RunningWorker } from '../helpers/workerd.js';

const workerd = findWorkerd();
const workerdMissing = 'missing' in workerd ? workerd.missing : null;

/** what the test asks the worker for; the worker samples (doSample: true) */
const REQUEST = { prompt: 'ma', maxNewTokens: 16, temperature: 0.8, topK: 8, seed: 99 };
const CONCURRENT_SEEDS = [1, 2, 3, 4, 5, 6];

/** Node's side, computed once: the model file's bytes and what Node generates from them */
interface Prepared {
  bytes: Uint8Array;
  config: TinyGPT.GPTConfig;
  expected: TinyGPT.GenerateResult;
  /** ids Node samples for each of CONCURRENT_SEEDS, one after another */
  bySeed: number[][];
}
let preparing: Promise<Prepared> | undefined;

async function prepareInNode(): Promise<Prepared> {
  const sdk = await importBuiltSDK();
  const bytes = await namesModelBytes(sdk);

  // Node's answer from the same bytes, loaded as the worker loads them
  const loaded = await sdk.loadModel(bytes, { backend: 'wasm' });
  try {
    const { prompt, ...sampling } = REQUEST;
    const options = { ...sampling, tokenizer: loaded.tokenizer, doSample: true };
    const expected = await sdk.generate(loaded.model, prompt, options);
    const bySeed: number[][] = [];
    for (const seed of CONCURRENT_SEEDS) bySeed.push((await sdk.generate(loaded.model, prompt, { ...options, seed })).ids);
    return { bytes, config: loaded.model.config, expected, bySeed };
  } finally {
    loaded.model.dispose();
  }
}

/**
 * A plain Worker of a year-old compatibility date has no Node.js modules at all (no nodejs_compat
 * flag): the bundle must not need them. The newest date checks that nothing newer breaks it.
 */
const COMPATIBILITY_DATES = [
  { label: 'a plain Worker (compatibility date 2025-09-01, no Node.js modules)', date: '2025-09-01' },
  {
    label: `the newest compatibility date (${'missing' in workerd ? '?' : workerd.compatibilityDate})`,
    date: 'missing' in workerd ? '' : workerd.compatibilityDate,
  },
];

describe.skipIf(workerdMissing !== null).each(COMPATIBILITY_DATES)(
  `the bundle in workerd${workerdMissing ? ` (skipped: ${workerdMissing})` : ''}: $label`,
  ({ date }) => {
    let worker: RunningWorker | undefined;
    let origin: string;
    let expected: TinyGPT.GenerateResult;
    let expectedConfig: TinyGPT.GPTConfig;
    let expectedBySeed: number[][];

    beforeAll(async () => {
      const prepared = await (preparing ??= prepareInNode());
      expected = prepared.expected;
      expectedBySeed = prepared.bySeed;
      expectedConfig = prepared.config;
      worker = await startWorker((workerd as { bin: string }).bin, date, prepared.bytes);
      origin = worker.origin;
    });

    afterAll(async () => {
      await worker?.stop();
    });

    async function post(body: unknown): Promise<Response> {
      return fetch(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    }

    test('the worker loads the model with the wasm kernels handed in as a module', async () => {
      const info = await (await fetch(`${origin}/info`)).json();
      expect(info).toMatchObject({ backend: 'wasm', tokenizer: 'char', config: expectedConfig });
    });

    test('POST /generate samples the same ids and text as Node for the same model bytes and seed', async () => {
      const response = await post(REQUEST);
      const body = await response.json();
      expect(response.status, JSON.stringify(body)).toBe(200);
      expect(body.ids).toHaveLength(REQUEST.maxNewTokens);
      expect(body.ids).toEqual(expected.ids);
      expect(body.text).toBe(expected.text);
      expect(body.backend).toBe('wasm');
    });

    test('GET /generate with query parameters gives the same answer', async () => {
      const query = new URLSearchParams(Object.entries(REQUEST).map(([k, v]) => [k, String(v)]));
      const response = await fetch(`${origin}/generate?${query}`);
      const body = await response.json();
      expect(response.status, JSON.stringify(body)).toBe(200);
      expect(body.ids).toEqual(expected.ids);
    });

    test('concurrent requests with different seeds each get what Node samples for their seed', async () => {
      const responses = await Promise.all(CONCURRENT_SEEDS.map((seed, i) => post({ ...REQUEST, seed, stream: i % 2 === 1 })));
      const ids = await Promise.all(
        responses.map(async (response, i) => {
          if (i % 2 === 0) return (await response.json()).ids as number[];
          const events = (await response.text()).trim().split('\n\n').slice(0, -1);
          return events.map((e) => (JSON.parse(e.replace(/^data: /, '')) as { id: number }).id);
        }),
      );
      expect(ids).toEqual(expectedBySeed);
      expect(new Set(ids.map((row) => row.join(','))).size).toBeGreaterThan(1);
    });

    test('streaming: server-sent events carry the same tokens one by one', async () => {
      const response = await post({ ...REQUEST, stream: true });
      expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const events = (await response.text()).trim().split('\n\n');
      expect(events.at(-1)).toBe('event: done\ndata: {}');
      const tokens = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, '')) as { id: number; text: string });
      expect(tokens.map((t) => t.id)).toEqual(expected.ids);
      expect(tokens.map((t) => t.text).join('')).toBe(expected.text);
    });

    test('bad input is refused with 400 and a message naming the field, the value and the range', async () => {
      const badTemperature = await post({ ...REQUEST, temperature: -1 });
      expect(badTemperature.status).toBe(400);
      expect((await badTemperature.json()).error).toMatch(/temperature must be .*-1/);

      const badId = await post({ ids: [0, 9999], maxNewTokens: 2 });
      expect(badId.status).toBe(400);
      expect((await badId.json()).error).toMatch(/prompt\[1\].*9999/);

      const unknownField = await post({ ...REQUEST, temprature: 1 });
      expect(unknownField.status).toBe(400);
      expect((await unknownField.json()).error).toMatch(/unknown field "temprature"/);
    });
  },
);

/** a quantized model file (Q4_0 codes and float16 scales) served as it is: the worker's ids and stream equal Node's from the same bytes */
describe.skipIf(workerdMissing !== null)(`a Q4_0 model file in workerd${workerdMissing ? ` (skipped: ${workerdMissing})` : ''}`, () => {
  let worker: RunningWorker | undefined;
  afterAll(async () => {
    await worker?.stop();
  });

  test('POST /generate and its stream sample what Node samples from the same quantized bytes', async () => {
    const sdk = await importBuiltSDK();
    const float = await sdk.loadModel(await namesModelBytes(sdk), { backend: 'wasm' });
    const quantized = await sdk.quantizeModel(float.model, { format: 'q4_0', backend: 'wasm', wasmThreads: 1 });
    const bytes = await sdk.saveModel(quantized, { tokenizer: float.tokenizer });
    float.model.dispose();
    quantized.dispose();
    const loaded = await sdk.loadModel(bytes, { backend: 'wasm' });
    const { prompt, ...sampling } = REQUEST;
    const expected = await sdk.generate(loaded.model, prompt, { ...sampling, tokenizer: loaded.tokenizer, doSample: true });
    expect(loaded.model).toBeInstanceOf(sdk.QuantizedGPT);
    loaded.model.dispose();

    worker = await startWorker((workerd as { bin: string }).bin, (workerd as { compatibilityDate: string }).compatibilityDate, bytes);
    const post = (body: unknown) =>
      fetch(`${worker!.origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const body = await (await post(REQUEST)).json();
    expect(body.ids).toHaveLength(REQUEST.maxNewTokens);
    expect(body.ids).toEqual(expected.ids);
    expect(body.text).toBe(expected.text);
    const events = (await (await post({ ...REQUEST, stream: true })).text()).trim().split('\n\n').slice(0, -1);
    expect(events.map((e) => (JSON.parse(e.replace(/^data: /, '')) as { id: number }).id)).toEqual(expected.ids);
  });
});

/**
 * One base model file and two LoRA adapter files served by one worker: a request picks an adapter by
 * name, and its ids (plain and streamed, alone or interleaved with requests for the other adapter
 * and for none) equal Node's generate on the same base with that adapter attached.
 */
describe.skipIf(workerdMissing !== null)(`LoRA adapters in workerd${workerdMissing ? ` (skipped: ${workerdMissing})` : ''}`, () => {
  let worker: RunningWorker | undefined;
  afterAll(async () => {
    await worker?.stop();
  });

  test('a request picks an adapter by name and samples what Node samples with it; an unknown name is a 400 naming the field', async () => {
    const sdk = await importBuiltSDK();
    const bytes = await namesModelBytes(sdk);
    const loaded = await sdk.loadModel(bytes, { backend: 'wasm' });
    const { tokenizer } = loaded;
    const model = loaded.model as TinyGPT.GPT;
    const rng = new Rng(17);
    const adapters: Record<string, Uint8Array> = {};
    for (const [name, targets] of [
      ['moby', ['attn.c_attn', 'mlp.c_fc']],
      ['names', ['attn.c_proj']],
    ] as const) {
      const adapter = sdk.addLoRA(model, { rank: 2, targets: [...targets] });
      adapter.setParameters(Object.fromEntries(adapter.entries.map((e) => [e.name, normal32(rng, e.length, 0.5)])));
      adapters[name] = await sdk.saveAdapter(adapter);
      model.setAdapter(null);
      adapter.dispose();
    }
    const { prompt, ...sampling } = REQUEST;
    const cases = [
      { adapter: 'moby', seed: 1 },
      { adapter: 'names', seed: 2 },
      { adapter: undefined, seed: 3 },
      { adapter: 'moby', seed: 4 },
    ];
    const expected: number[][] = [];
    for (const { adapter, seed } of cases) {
      const attached = adapter === undefined ? null : sdk.loadAdapter(model, adapters[adapter].slice());
      expected.push((await sdk.generate(model, prompt, { ...sampling, seed, tokenizer, doSample: true })).ids);
      model.setAdapter(null);
      attached?.dispose();
    }
    // the adapters change what the base samples: equal ids below mean the worker ran each request's adapter
    const baseSameSeed = (await sdk.generate(model, prompt, { ...sampling, seed: 1, tokenizer, doSample: true })).ids;
    expect(expected[0]).not.toEqual(baseSameSeed);
    model.dispose();

    worker = await startWorker(
      (workerd as { bin: string }).bin,
      (workerd as { compatibilityDate: string }).compatibilityDate,
      bytes,
      adapters,
    );
    const post = (body: unknown) =>
      fetch(`${worker!.origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const info = await (await fetch(`${worker.origin}/info`)).json();
    expect(info.adapters).toMatchObject([
      { name: 'moby', rank: 2, targets: ['attn.c_attn', 'mlp.c_fc'] },
      { name: 'names', rank: 2, targets: ['attn.c_proj'] },
    ]);
    // all at once, every other one streamed: their tokens interleave in the isolate
    const responses = await Promise.all(cases.map(({ adapter, seed }, i) => post({ ...REQUEST, adapter, seed, stream: i % 2 === 1 })));
    const ids = await Promise.all(
      responses.map(async (response, i) => {
        expect(response.status).toBe(200);
        if (i % 2 === 0) return (await response.json()).ids as number[];
        const events = (await response.text()).trim().split('\n\n').slice(0, -1);
        return events.map((e) => (JSON.parse(e.replace(/^data: /, '')) as { id: number }).id);
      }),
    );
    expect(ids).toEqual(expected);
    const query = new URLSearchParams({
      prompt,
      maxNewTokens: String(REQUEST.maxNewTokens),
      temperature: '0.8',
      topK: '8',
      seed: '1',
      adapter: 'moby',
    });
    expect((await (await fetch(`${worker.origin}/generate?${query}`)).json()).ids).toEqual(expected[0]);

    const unknown = await post({ ...REQUEST, adapter: 'shakespeare' });
    expect(unknown.status).toBe(400);
    expect((await unknown.json()).error).toBe('adapter must be one of "moby", "names", got "shakespeare"');
    const notString = await post({ ...REQUEST, adapter: 3 });
    expect(notString.status).toBe(400);
    expect((await notString.json()).error).toMatch(/^adapter must be one of .*, got 3$/);
  });
});
