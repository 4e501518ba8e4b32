/**
 * The example Worker's generation slots, run in Node with the SDK's generateStream replaced by
 * streams the test drives, and the clock set by the test: the one case the workerd tests cannot
 * produce on demand, a generation that stops making tokens without its client cancelling (as
 * workerd leaves one whose request it dropped). Its slot must come back after STALL_MS (10 s), the
 * stalled stream must end with an error event, and no timer may be needed for that.
 */
import { afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import * as sdk from '../../src/index.js';

/** what each mocked generation yields, and the next() calls the test has not answered */
const pending: Array<(result: IteratorResult<sdk.StreamToken>) => void> = [];
let hangAfterFirst = true;

vi.mock('tinygpt/tinygpt.wasm', () => ({ default: null }));
vi.mock('tinygpt', async () => {
  const real = await import('../../src/index.js');
  return {
    ...real,
    setWasmModule: () => undefined,
    /** checks the options as the SDK does, then one token at once and the rest only when the test says */
    generateStream: (model: sdk.GPTModel, prompt: sdk.Prompt, options: sdk.GenerateOptions) => {
      real.generateStream(model, prompt, options);
      let sent = 0;
      return {
        [Symbol.asyncIterator]: () => ({
          next: () =>
            sent++ === 0 || !hangAfterFirst
              ? Promise.resolve({ done: sent > 2, value: { id: 1, text: 'a' } })
              : new Promise<IteratorResult<sdk.StreamToken>>((resolve) => pending.push(resolve)),
          return: () => Promise.resolve({ done: true, value: undefined }),
        }),
      };
    },
  };
});

/** a plain JavaScript module without type declarations: imported by a path the type checker does not follow */
const WORKER = '../../examples/edge/worker.js';

interface Worker {
  fetch(request: Request, env: { MODEL: ArrayBuffer }): Promise<Response>;
}

describe('the edge Worker gives back the slot of a generation that stopped making tokens', () => {
  let worker: Worker;
  let env: { MODEL: ArrayBuffer };

  beforeAll(async () => {
    const tokenizer = sdk.CharTokenizer.train('abc\n');
    const model = await sdk.createModel(
      { vocabSize: tokenizer.vocabSize, maxSeqLen: 8, dModel: 8, nLayers: 1, nHeads: 2 },
      { backend: 'js' },
    );
    const bytes = await sdk.saveModel(model, { tokenizer });
    model.dispose();
    env = { MODEL: bytes.slice().buffer };
    worker = ((await import(/* @vite-ignore */ WORKER)) as { default: Worker }).default;
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  const stream = () =>
    worker.fetch(new Request('http://edge/generate', { method: 'POST', body: JSON.stringify({ prompt: 'ab', stream: true }) }), env);

  test('64 stalled streams hold every slot; 10 s later the next request is served and they end with an error event', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-03T12:00:00Z'));
    const held = await Promise.all(Array.from({ length: 64 }, stream));
    expect(held.map((r) => r.status)).toEqual(new Array(64).fill(200));
    const readers = held.map((r) => r.body!.getReader());
    // each stream's first token arrives; the second never does
    for (const reader of readers) expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^data: \{"id":1/);
    const secondReads = readers.map((reader) => reader.read());
    await vi.waitFor(() => expect(pending.length).toBe(64));

    const refused = await stream();
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');

    vi.setSystemTime(new Date('2026-12-03T12:00:09Z'));
    expect((await stream()).status).toBe(503);

    // past STALL_MS without a token: asking for a slot takes the stalled ones back
    vi.setSystemTime(new Date('2026-12-03T12:00:11Z'));
    hangAfterFirst = false;
    const served = await stream();
    expect(served.status).toBe(200);
    expect(await served.text()).toMatch(/event: done/);
    const info = (await (await worker.fetch(new Request('http://edge/info'), env)).json()) as { load: { inFlight: number } };
    expect(info.load.inFlight).toBe(0);

    // a stalled generation that wakes up after losing its slot ends its stream with an error event
    for (const resolve of pending) resolve({ done: false, value: { id: 1, text: 'a' } });
    const ends = await Promise.all(
      secondReads.map(async (read, i) => {
        let text = new TextDecoder().decode((await read).value ?? new Uint8Array());
        for (let r = await readers[i].read(); !r.done; r = await readers[i].read()) text += new TextDecoder().decode(r.value);
        return text;
      }),
    );
    expect(ends.every((text) => /event: error\ndata: \{"error":"generation stalled: no token for 10 s/.test(text))).toBe(true);
  });
});
