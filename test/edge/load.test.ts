/**
 * The example Worker under load, in workerd on a loopback port: 50 clients for LOAD_SECONDS (30 s;
 * TINYGPT_LOAD_SECONDS overrides) send a mix of valid requests (POST, GET, streamed), streams they
 * abandon after the first event, and invalid ones (out-of-vocabulary prompts, bad options, wrong
 * methods, 1-10 MB bodies, oversized n-gram sizes and prompts). Afterwards workerd must still
 * answer with every generation slot given back; every valid request must have had 200 and the ids
 * Node's generate gives for the same model bytes and seed; every invalid one a 4xx whose message
 * names the field; no 500 at all; and workerd's resident memory must stay within 1.5x of its level
 * after a warm-up with the same mix. Clients honour 503 + Retry-After (they wait and send again),
 * so the assertions are about what the answers are, never about how fast they come. Requests/s
 * and latency percentiles are printed, not asserted.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { findWorkerd, importBuiltSDK, namesModelBytes, startWorker, type RunningWorker } from '../helpers/workerd.js';

const workerd = findWorkerd();
const workerdMissing = 'missing' in workerd ? workerd.missing : null;

const CLIENTS = 50;
const LOAD_SECONDS = Number(process.env.TINYGPT_LOAD_SECONDS ?? 30);
/**
 * The warm level is workerd's memory after this long of the same mix: V8 grows its heap lazily (the
 * 1-10 MB bodies are read and dropped), so a few requests do not reach the working size.
 */
const WARM_SECONDS = 10;
const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];
const REQUEST = { prompt: 'ma', maxNewTokens: 16, temperature: 0.8, topK: 8 };

/** workerd's resident set in bytes (Linux), or null where /proc is not there */
function rssBytes(pid: number): number | null {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

interface Outcome {
  kind: string;
  valid: boolean;
  status: number | null;
  ok: boolean;
  detail: string;
  ms: number;
}

/** the Worker's generation slots (examples/edge/worker.js MAX_ACTIVE and STALL_MS) */
const MAX_IN_FLIGHT = 64;
const STALL_SECONDS = 10;

describe.skipIf(workerdMissing !== null)(`the edge Worker under load${workerdMissing ? ` (skipped: ${workerdMissing})` : ''}`, () => {
  let worker: RunningWorker;
  let expected: Map<number, number[]>;

  beforeAll(async () => {
    const sdk = await importBuiltSDK();
    const bytes = await namesModelBytes(sdk);
    const loaded = await sdk.loadModel(bytes, { backend: 'wasm' });
    expected = new Map();
    for (const seed of SEEDS) {
      const { prompt, ...options } = REQUEST;
      const result = await sdk.generate(loaded.model, prompt, { ...options, seed, doSample: true, tokenizer: loaded.tokenizer });
      expected.set(seed, result.ids);
    }
    loaded.model.dispose();
    worker = await startWorker((workerd as { bin: string }).bin, (workerd as { compatibilityDate: string }).compatibilityDate, bytes);
  }, 120_000);

  afterAll(async () => {
    await worker?.stop();
  });

  const post = (body: unknown, init: RequestInit = {}) =>
    fetch(`${worker.origin}/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      ...init,
    });

  /**
   * A client that honours the service's load shedding: a 503 must carry Retry-After, and the request is
   * sent again after it (as HTTP clients are told to), so a valid request still ends in its 200.
   */
  let shed = 0;
  async function honouringRetryAfter(send: () => Promise<Response>): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const response = await send();
      const retryAfter = Number(response.headers.get('retry-after'));
      if (response.status !== 503 || !(retryAfter > 0) || attempt === 30) return response;
      shed++;
      await response.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
    }
  }

  /** 1 to 10 MB JSON bodies */
  const bigBodies = [1, 4, 10].map((mb) => Buffer.from(JSON.stringify({ prompt: 'a'.repeat(mb * 2 ** 20) })));

  /**
   * POST raw bytes with node:http, which keeps the answer of a server that replies (413) before the
   * upload ends and then closes: the upload's own EPIPE after that answer is not a failure.
   */
  function postBytes(bytes: Buffer): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(`${worker.origin}/generate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': bytes.length },
      });
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('error', (err) => {
        if (!answered) reject(err);
      });
      req.end(bytes);
    });
  }

  /** generations holding a slot, as /info reports them */
  async function inFlight(): Promise<number> {
    const info = (await (await fetch(`${worker.origin}/info`)).json()) as { load: { inFlight: number; maxInFlight: number } };
    expect(info.load.maxInFlight).toBe(MAX_IN_FLIGHT);
    return info.load.inFlight;
  }

  /**
   * Once no client is left, every slot must come back: at once for finished and disconnected
   * generations, and within STALL_SECONDS for any the runtime stopped running. The bound is three
   * times that, so a slow machine cannot fail it; a slot that is never given back does.
   */
  async function slotsComeBack(): Promise<number> {
    let held = await inFlight();
    for (let i = 0; i < 6 * STALL_SECONDS && held > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      held = await inFlight();
    }
    return held;
  }

  /** ids of a finished server-sent-event stream */
  async function streamIds(response: Response): Promise<number[]> {
    const events = (await response.text()).trim().split('\n\n');
    if (events.at(-1) !== 'event: done\ndata: {}') throw new Error(`stream did not end with done: ${events.at(-1)}`);
    return events.slice(0, -1).map((e) => (JSON.parse(e.replace(/^data: /, '')) as { id: number }).id);
  }

  /** One request of kind `n % 12`: valid ones check the ids, invalid ones the status and the field named. */
  async function one(n: number): Promise<Outcome> {
    const seed = SEEDS[n % SEEDS.length];
    const want = expected.get(seed)!;
    const start = performance.now();
    const done = (kind: string, valid: boolean, status: number | null, ok: boolean, detail = ''): Outcome => ({
      kind,
      valid,
      status,
      ok,
      detail,
      ms: performance.now() - start,
    });
    const invalid = async (kind: string, response: Response, status: number, field: RegExp): Promise<Outcome> => {
      const error = ((await response.json()) as { error?: string }).error ?? '';
      return done(kind, false, response.status, response.status === status && field.test(error), error);
    };
    switch (n % 12) {
      case 0:
      case 1: {
        const response = await honouringRetryAfter(() => post({ ...REQUEST, seed }));
        const body = (await response.json()) as { ids: number[] };
        return done('post', true, response.status, response.status === 200 && JSON.stringify(body.ids) === JSON.stringify(want));
      }
      case 2: {
        const query = new URLSearchParams(Object.entries({ ...REQUEST, seed }).map(([k, v]) => [k, String(v)]));
        const response = await honouringRetryAfter(() => fetch(`${worker.origin}/generate?${query}`));
        const body = (await response.json()) as { ids: number[] };
        return done('get', true, response.status, response.status === 200 && JSON.stringify(body.ids) === JSON.stringify(want));
      }
      case 3: {
        const response = await honouringRetryAfter(() => post({ ...REQUEST, seed, stream: true }));
        const ids = response.status === 200 ? await streamIds(response) : [];
        return done('stream', true, response.status, response.status === 200 && JSON.stringify(ids) === JSON.stringify(want));
      }
      case 4: {
        // a client that goes away after the first event
        const controller = new AbortController();
        const response = await honouringRetryAfter(() =>
          post({ ...REQUEST, seed, maxNewTokens: 200, stream: true }, { signal: controller.signal }),
        );
        const status = response.status;
        await response.body!.getReader().read();
        controller.abort();
        return done('disconnect', true, status, status === 200);
      }
      case 5:
        return invalid('out-of-vocabulary prompt', await post({ ...REQUEST, prompt: 'ma9\u{1F600}' }), 400, /^prompt: /);
      case 6:
        return invalid('bad option', await post({ ...REQUEST, temperature: -1 }), 400, /temperature/);
      case 7:
        return invalid('method', await fetch(`${worker.origin}/generate`, { method: 'PUT', body: '{}' }), 405, /method PUT/);
      case 8: {
        const { status, body } = await postBytes(bigBodies[n % bigBodies.length]);
        const error = (JSON.parse(body) as { error?: string }).error ?? '';
        return done('large body', false, status, status === 413 && /^body: /.test(error), error);
      }
      case 9:
        return invalid('n-gram size', await post({ ids: new Array(24).fill(0), noRepeatNgramSize: 80_000 }), 400, /noRepeatNgramSize/);
      case 10:
        return invalid('long prompt', await post({ ...REQUEST, prompt: 'ma'.repeat(500) }), 400, /^prompt: /);
      default:
        return invalid('unknown field', await post({ ...REQUEST, temprature: 1 }), 400, /unknown field "temprature"/);
    }
  }

  async function run(clients: number, until: () => boolean): Promise<Outcome[]> {
    const outcomes: Outcome[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (until()) {
          const n = next++;
          try {
            outcomes.push(await one(n));
          } catch (err) {
            outcomes.push({ kind: `request ${n % 12}`, valid: n % 12 <= 4, status: null, ok: false, detail: String(err), ms: 0 });
          }
        }
      }),
    );
    return outcomes;
  }

  test('streams whose clients disconnect give their generation slots back, so the next burst is served', async () => {
    // three bursts of MAX_IN_FLIGHT streams, each abandoned after its first event: without the slots
    // coming back, the second burst would be refused (503) and every request after it too
    for (let burst = 0; burst < 3; burst++) {
      const statuses = await Promise.all(
        Array.from({ length: MAX_IN_FLIGHT }, async (_, i) => {
          const controller = new AbortController();
          const response = await honouringRetryAfter(() =>
            post({ ...REQUEST, seed: i, maxNewTokens: 256, stream: true }, { signal: controller.signal }),
          );
          if (response.status === 200) await response.body!.getReader().read();
          controller.abort();
          return response.status;
        }),
      );
      expect(statuses.filter((status) => status !== 200)).toEqual([]);
      expect(await slotsComeBack()).toBe(0);
    }
    const response = await post({ ...REQUEST, seed: SEEDS[0] });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { ids: number[] }).ids).toEqual(expected.get(SEEDS[0]));
  });

  test(
    `${CLIENTS} clients for ${LOAD_SECONDS} s of mixed valid, streamed, abandoned and invalid requests`,
    { timeout: (WARM_SECONDS + LOAD_SECONDS + 120) * 1000 },
    async () => {
      const pid = worker.child.pid!;
      // warm-up: the same mix, so the isolate's heap and the arena reach their working size
      const warmStart = performance.now();
      await run(CLIENTS, () => performance.now() - warmStart < WARM_SECONDS * 1000);
      const warmRss = rssBytes(pid);

      // the peak, sampled each second, not only the level at the end
      let peakRss = warmRss ?? 0;
      const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(pid) ?? 0)), 1000);
      const startedAt = performance.now();
      const outcomes = await run(CLIENTS, () => performance.now() - startedAt < LOAD_SECONDS * 1000);
      const seconds = (performance.now() - startedAt) / 1000;
      clearInterval(sampler);
      const endRss = rssBytes(pid);
      peakRss = Math.max(peakRss, endRss ?? 0);

      const valid = outcomes.filter((o) => o.kind === 'post' || o.kind === 'get').map((o) => o.ms);
      valid.sort((a, b) => a - b);
      const pct = (p: number) => valid[Math.min(valid.length - 1, Math.floor((p / 100) * valid.length))]?.toFixed(1) ?? '?';
      console.info(
        `[edge load] ${outcomes.length} requests in ${seconds.toFixed(1)} s = ${(outcomes.length / seconds).toFixed(0)} requests/s from ${CLIENTS} clients (${shed} answered 503 + Retry-After and sent again); ` +
          `non-streamed valid generations (16 tokens): p50 ${pct(50)} ms, p99 ${pct(99)} ms; ` +
          `workerd RSS ${warmRss === null ? '?' : (warmRss / 2 ** 20).toFixed(0)} MiB warm, ${(peakRss / 2 ** 20).toFixed(0)} MiB at the peak, ${endRss === null ? '?' : (endRss / 2 ** 20).toFixed(0)} MiB at the end`,
      );

      const info = await fetch(`${worker.origin}/info`);
      expect(info.status, worker.output()).toBe(200);
      await info.arrayBuffer();
      expect(await slotsComeBack()).toBe(0);
      const after = await honouringRetryAfter(() => post({ ...REQUEST, seed: SEEDS[0] }));
      expect(((await after.json()) as { ids: number[] }).ids).toEqual(expected.get(SEEDS[0]));

      const failures = outcomes.filter((o) => !o.ok);
      const byKind = new Map<string, number>();
      for (const f of failures) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
      console.info('[edge load] failures by kind', Object.fromEntries(byKind));
      expect(outcomes.filter((o) => o.status === 500)).toEqual([]);
      expect(failures.slice(0, 10), `${failures.length} of ${outcomes.length} failed`).toEqual([]);
      expect(outcomes.length).toBeGreaterThan(CLIENTS);
      if (warmRss !== null && endRss !== null) expect(peakRss).toBeLessThan(1.5 * warmRss);
    },
  );

  test('past MAX_ACTIVE generations in flight, a request gets 503 with Retry-After instead of queueing', async () => {
    // more streams of 256 tokens at once than there are slots: the first MAX_IN_FLIGHT are admitted
    // as they arrive, and the rest arrive long before 64 x 256 tokens are made
    const responses = await Promise.all(
      Array.from({ length: 3 * MAX_IN_FLIGHT }, (_, i) => post({ ...REQUEST, seed: i, maxNewTokens: 256, stream: true })),
    );
    const refused = responses.filter((r) => r.status === 503);
    const messages = await Promise.all(refused.map(async (r) => ((await r.json()) as { error: string }).error));
    // the admitted ones run to their end
    const admitted = responses.filter((r) => r.status === 200);
    const lengths = await Promise.all(admitted.map(async (r) => (await streamIds(r)).length));
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0].headers.get('retry-after')).toBe('1');
    expect(messages[0]).toMatch(/^busy: 64 generations are in flight/);
    expect(admitted.length + refused.length).toBe(responses.length);
    expect(lengths.every((n) => n >= 1 && n <= 256)).toBe(true);
    // the slots come back once those generations are done
    expect(await slotsComeBack()).toBe(0);
    const again = await post({ ...REQUEST, seed: SEEDS[0] });
    expect(again.status).toBe(200);
  });
});
