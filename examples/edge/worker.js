// A Cloudflare Worker (ES module syntax) that serves text generation from a tinygpt model file.
//
//   GET  /generate?prompt=ma&maxNewTokens=20&temperature=0.8&topK=10&seed=1
//   POST /generate  {"prompt": "ma", "maxNewTokens": 20, "temperature": 0.8, "stream": true}
//   POST /generate  {"prompt": "ma", "adapter": "moby"}   with one of the LoRA adapters the worker holds
//   GET  /info      the model's config, backend and tokenizer kind, its adapters, and the generations in flight
//
// Edge runtimes refuse to compile WebAssembly from bytes, so the kernels arrive as a module import
// (a compiled WebAssembly.Module) and are handed to the SDK once with setWasmModule. The model file
// comes from the MODEL binding (its bytes, e.g. a workerd data binding) or is fetched once from
// MODEL_URL; either way it is parsed once per isolate and reused across requests. LoRA adapter
// files (saveAdapter's) for that base model are named in ADAPTERS, a JSON object of name -> the
// name of a binding holding the file's bytes, or a URL to fetch it from; they load with the model,
// stay separate from it, and a request picks one by name ("adapter": "moby"). Requests with
// different adapters share the one base model and interleave token by token.
//
// It is built to hold under load: every request's cost is bounded before any work starts (body
// size, prompt length, option ranges), at most MAX_ACTIVE generations run at once per isolate (more
// get 503 with Retry-After), a stream makes a token only when its client reads one and stops when
// the client goes away, a generation that makes no progress for STALL_MS loses its slot, and every
// client error is a 4xx naming the field. A 500 means a fault of the worker or the model file.
import { generateStream, loadAdapter, loadModel, setWasmModule, withAdapter } from 'tinygpt';
import tinygptWasm from 'tinygpt/tinygpt.wasm';

setWasmModule(tinygptWasm);

/** generation options a request may set; everything else is refused */
const OPTION_NAMES = ['maxNewTokens', 'temperature', 'topK', 'topP', 'minP', 'repetitionPenalty', 'noRepeatNgramSize', 'seed', 'stop'];
const INTEGER_OPTIONS = new Set(['maxNewTokens', 'topK', 'noRepeatNgramSize', 'seed']);
/** a ceiling per request, so one request cannot hold the isolate for long */
const MAX_NEW_TOKENS_LIMIT = 256;
/** a JSON body larger than this is refused (413) before it is read */
const MAX_BODY_BYTES = 16 * 1024;
/** an oversized body is read and dropped up to this, so the client sees the 413; past it the connection is cut */
const MAX_DRAIN_BYTES = 16 * 1024 * 1024;
/** stop strings per request and characters per stop string */
const MAX_STOPS = 8;
const MAX_STOP_CHARS = 64;
/**
 * Generations in flight per isolate (streams included). Decoding is synchronous between tokens, so
 * these interleave token by token; past this a request gets 503 and Retry-After instead of waiting
 * in an unbounded queue. A single generation never waits on another request.
 */
const MAX_ACTIVE = 64;
const RETRY_AFTER_SECONDS = 1;
const RETRY_AFTER = { 'retry-after': String(RETRY_AFTER_SECONDS) };
/**
 * A generation that has made no token for this long gives its slot back: its client stopped reading,
 * or the runtime dropped the request's pending work (workerd does, for a request whose client went
 * away, so code waiting on it never resumes and no timer of that request ever fires). Slots are
 * checked when one is asked for, so reclaiming them needs no timer.
 */
const STALL_MS = 10_000;

let modelPromise;

async function fetchBytes(url, what) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${what} ${url} failed: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function loadModelFile(env) {
  let bytes;
  if (env.MODEL) {
    bytes = new Uint8Array(env.MODEL);
  } else if (env.MODEL_URL) {
    bytes = await fetchBytes(env.MODEL_URL, 'MODEL_URL');
  } else {
    throw new Error('no model: bind the model file as MODEL (bytes) or set MODEL_URL');
  }
  // Workers have no WebGPU: the wasm kernels run the model
  const { model, tokenizer } = await loadModel(bytes, { backend: 'wasm' });
  try {
    return { model, tokenizer, adapters: await loadAdapters(env, model) };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/**
 * The adapters named in env.ADAPTERS (a JSON object, or its text: name -> binding name or URL), each
 * kept beside the base model as a view that runs generation with that adapter.
 */
async function loadAdapters(env, model) {
  const views = new Map();
  if (env.ADAPTERS === undefined) return views;
  const table = typeof env.ADAPTERS === 'string' ? JSON.parse(env.ADAPTERS) : env.ADAPTERS;
  if (table === null || typeof table !== 'object' || Array.isArray(table)) {
    throw new Error('ADAPTERS must be a JSON object of adapter name -> binding name or URL');
  }
  for (const [name, source] of Object.entries(table)) {
    if (typeof source !== 'string') throw new Error(`ADAPTERS.${name} must be a binding name or a URL`);
    const bytes = env[source] !== undefined ? new Uint8Array(env[source]) : await fetchBytes(source, `ADAPTERS.${name}`);
    const adapter = loadAdapter(model, bytes, { attach: false });
    views.set(name, { adapter, view: withAdapter(model, adapter) });
  }
  return views;
}

/** the model, tokenizer and adapters, parsed once per isolate; a failed load is retried by the next request */
function loadOnce(env) {
  if (!modelPromise) {
    modelPromise = loadModelFile(env);
    modelPromise.catch(() => (modelPromise = undefined));
  }
  return modelPromise;
}

/** the generations holding a slot */
const leases = new Set();

/** A client error: `status` and a message that names the field. */
class HttpError extends Error {
  constructor(status, message, headers = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}
const bad = (message) => new HttpError(400, message);

/**
 * The body as text, refused with 413 past MAX_BODY_BYTES: by its Content-Length before any of it
 * is read, or once the bytes read pass the limit. An oversized body is not kept: what the client is
 * still sending is read and dropped (up to MAX_DRAIN_BYTES), so an HTTP/1.1 client that is still
 * uploading gets the 413 instead of a reset connection.
 */
async function readBody(request) {
  const declared = request.headers.get('content-length');
  if (declared !== null && !(Number(declared) <= MAX_BODY_BYTES)) {
    await drain(request.body);
    throw new HttpError(413, `body: ${declared} bytes; at most ${MAX_BODY_BYTES} are accepted`);
  }
  if (!request.body) return '';
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await drain(reader, size);
      throw new HttpError(413, `body: more than ${MAX_BODY_BYTES} bytes; at most ${MAX_BODY_BYTES} are accepted`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw bad('body: not valid UTF-8');
  }
}

/** read and drop a body (a stream or its reader) up to MAX_DRAIN_BYTES in total, then cancel what is left */
async function drain(source, alreadyRead = 0) {
  if (!source) return;
  const reader = typeof source.getReader === 'function' ? source.getReader() : source;
  let size = alreadyRead;
  try {
    while (size <= MAX_DRAIN_BYTES) {
      const { done, value } = await reader.read();
      if (done) return;
      size += value.byteLength;
    }
    await reader.cancel();
  } catch {
    // the client went away: nothing to answer
  }
}

async function readRequest(request, url) {
  if (request.method === 'GET') {
    const body = {};
    for (const [key, value] of url.searchParams) {
      if (key in body) throw bad(`${key}: given more than once`);
      if (key === 'prompt' || key === 'stop' || key === 'adapter') body[key] = value;
      else if (key === 'ids') body.ids = value === '' ? [] : value.split(',').map(Number);
      else if (key === 'stream') body.stream = value === '1' || value === 'true';
      else body[key] = value === '' ? NaN : Number(value);
    }
    return body;
  }
  const text = await readBody(request);
  try {
    return JSON.parse(text);
  } catch {
    throw bad('body: must be a JSON object');
  }
}

/** the model a request runs: the base, or a view of it with the adapter the request names */
function pickModel(body, model, adapters) {
  if (body.adapter === undefined) return model;
  const names = [...adapters.keys()];
  const loaded = names.length ? `one of ${names.map((n) => JSON.stringify(n)).join(', ')}` : 'absent (this worker holds no adapters)';
  if (typeof body.adapter !== 'string' || !adapters.has(body.adapter)) {
    throw bad(`adapter must be ${loaded}, got ${JSON.stringify(body.adapter)}`);
  }
  return adapters.get(body.adapter).view;
}

/** prompt (text, needs the model's tokenizer) or ids, and the generation options, checked and bounded */
function planRequest(body, model, tokenizer, adapters) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('body: must be a JSON object');
  const allowed = new Set(['prompt', 'ids', 'stream', 'adapter', ...OPTION_NAMES]);
  for (const key of Object.keys(body)) {
    if (!allowed.has(key)) throw bad(`unknown field "${key}"; allowed: ${[...allowed].join(', ')}`);
  }
  const { maxSeqLen, vocabSize } = model.config;
  // the model reads at most maxSeqLen positions: a longer prompt would be cut anyway
  let prompt;
  if (body.ids !== undefined) {
    if (body.prompt !== undefined) throw bad('give prompt or ids, not both');
    if (!Array.isArray(body.ids)) throw bad(`ids must be an array of token ids, got ${JSON.stringify(body.ids)}`);
    if (body.ids.length > maxSeqLen) throw bad(`ids: ${body.ids.length} tokens; this model reads at most maxSeqLen = ${maxSeqLen}`);
    body.ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize)
        throw bad(`prompt[${i}] (ids) must be a token id in [0, ${vocabSize}), got ${id}`);
    });
    prompt = body.ids;
  } else {
    if (typeof body.prompt !== 'string') throw bad('prompt: give prompt (a string) or ids (token ids)');
    if (!tokenizer) throw bad('prompt: this model file has no tokenizer: send ids instead of a text prompt');
    // no token is shorter than one UTF-16 unit: this bounds the cost of encoding
    if (body.prompt.length > maxSeqLen * 2)
      throw bad(`prompt: ${body.prompt.length} characters; this model reads at most ${maxSeqLen} tokens`);
    let ids;
    try {
      ids = tokenizer.encode(body.prompt);
    } catch (err) {
      throw bad(`prompt: ${err.message}`);
    }
    if (ids.length > maxSeqLen) throw bad(`prompt: ${ids.length} tokens; this model reads at most maxSeqLen = ${maxSeqLen}`);
    prompt = body.prompt;
  }
  const options = { tokenizer, doSample: true, maxNewTokens: 32 };
  for (const name of OPTION_NAMES) {
    const value = body[name];
    if (value === undefined) continue;
    if (name === 'stop') {
      const stops = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(stops) || stops.length > MAX_STOPS || stops.some((s) => typeof s !== 'string' || s.length > MAX_STOP_CHARS)) {
        throw bad(`stop must be a string or up to ${MAX_STOPS} strings of at most ${MAX_STOP_CHARS} characters`);
      }
    } else if (typeof value !== 'number' || Number.isNaN(value)) {
      throw bad(`${name} must be a number, got ${JSON.stringify(value)}`);
    } else if (INTEGER_OPTIONS.has(name) && !Number.isInteger(value)) {
      throw bad(`${name} must be an integer, got ${value}`);
    }
    options[name] = value;
  }
  if (options.maxNewTokens > MAX_NEW_TOKENS_LIMIT) {
    throw bad(`maxNewTokens must be at most ${MAX_NEW_TOKENS_LIMIT} here, got ${options.maxNewTokens}`);
  }
  // longer n-grams than the context can hold block nothing more, and each costs a scan
  if (options.noRepeatNgramSize > maxSeqLen) {
    throw bad(`noRepeatNgramSize must be at most maxSeqLen = ${maxSeqLen} here, got ${options.noRepeatNgramSize}`);
  }
  if (body.stream !== undefined && typeof body.stream !== 'boolean')
    throw bad(`stream must be true or false, got ${JSON.stringify(body.stream)}`);
  return { prompt, options, stream: body.stream === true, model: pickModel(body, model, adapters) };
}

function json(data, status = 200, headers = {}) {
  return new Response(JSON.stringify(data), { status, headers: { 'content-type': 'application/json; charset=utf-8', ...headers } });
}

/**
 * A generation's slot. The tokens are pulled one at a time through next(), which records progress;
 * end() (the generation finished, failed, or its client went away) and revoke() (it stalled) give
 * the slot back and close the token iterator, which frees its KV cache.
 */
class Lease {
  constructor(tokens) {
    this.iterator = tokens[Symbol.asyncIterator]();
    this.progressAt = Date.now();
    this.revoked = false;
    leases.add(this);
  }

  get open() {
    return leases.has(this);
  }

  /** the next token, or null after the last */
  async next() {
    if (this.revoked)
      throw new HttpError(503, `generation stalled: no token for ${STALL_MS / 1000} s; its slot was given back`, RETRY_AFTER);
    const { done, value } = await this.iterator.next();
    this.progressAt = Date.now();
    return done ? null : value;
  }

  end() {
    if (!leases.delete(this)) return;
    // a generator suspended at a token stops here (freeing its cache); one still running stops at its next token
    this.iterator.return?.().catch(() => undefined);
  }

  revoke() {
    this.revoked = true;
    this.end();
  }
}

/** give back the slots of generations that have stalled; how many are still in flight */
function inFlight() {
  const now = Date.now();
  for (const lease of leases) if (now - lease.progressAt > STALL_MS) lease.revoke();
  return leases.size;
}

/** take a generation slot for `tokens`, or refuse with 503 when every slot is taken */
function admit(tokens) {
  if (inFlight() >= MAX_ACTIVE) {
    throw new HttpError(503, `busy: ${MAX_ACTIVE} generations are in flight; retry after ${RETRY_AFTER_SECONDS} s`, RETRY_AFTER);
  }
  return new Lease(tokens);
}

/** the whole generation at once, as generate() returns it for one sequence */
async function collect(lease) {
  const ids = [];
  let text = '';
  let finishReason = 'length';
  try {
    for (let token = await lease.next(); token; token = await lease.next()) {
      ids.push(token.id);
      text += token.text ?? '';
      if (token.finishReason) finishReason = token.finishReason;
    }
  } finally {
    lease.end();
  }
  return { ids, text, finishReason };
}

/**
 * Server-sent events: one `data: {"id", "text"}` event per token, then `event: done`. The stream is
 * pulled: a token is made when the connection takes the previous one, so tokens never pile up in
 * the isolate faster than the client reads them. cancel() (the client went away) gives the slot
 * back itself: workerd drops the pending timers of a request whose client left, so a pull that was
 * waiting for its token then may never resume, and nothing after that await can be relied on.
 */
function streamResponse(lease) {
  const encoder = new TextEncoder();
  const event = (name, data) => encoder.encode(`${name ? `event: ${name}\n` : ''}data: ${JSON.stringify(data)}\n\n`);
  let cancelled = false;
  const body = new ReadableStream(
    {
      async pull(controller) {
        let token;
        try {
          token = await lease.next();
        } catch (err) {
          token = err instanceof Error ? err : new Error(String(err));
        }
        // the client went away while this token was made
        if (cancelled) return;
        if (token && !(token instanceof Error)) {
          controller.enqueue(event(null, { id: token.id, text: token.text ?? '', finishReason: token.finishReason }));
          return;
        }
        lease.end();
        controller.enqueue(token ? event('error', { error: token.message }) : event('done', {}));
        controller.close();
      },
      cancel() {
        cancelled = true;
        lease.end();
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' } });
}

async function route(request, env, url) {
  if (url.pathname === '/info') {
    if (request.method !== 'GET') throw new HttpError(405, `method ${request.method} not allowed on /info: use GET`, { allow: 'GET' });
    const { model, tokenizer, adapters } = await loadOnce(env);
    return json({
      config: model.config,
      backend: model.backendName,
      parameters: model.numParameters(),
      tokenizer: tokenizer?.kind ?? null,
      adapters: [...adapters].map(([name, { adapter }]) => ({ name, ...adapter.config, parameters: adapter.numParameters })),
      load: { inFlight: inFlight(), maxInFlight: MAX_ACTIVE },
    });
  }
  if (url.pathname !== '/generate') {
    throw new HttpError(404, `no route ${url.pathname}: use /generate (GET with query parameters, or POST JSON) or /info`);
  }
  if (request.method !== 'GET' && request.method !== 'POST') {
    throw new HttpError(405, `method ${request.method} not allowed on /generate: use GET or POST`, { allow: 'GET, POST' });
  }
  const body = await readRequest(request, url);
  const { model: base, tokenizer, adapters } = await loadOnce(env);
  const { prompt, options, stream, model } = planRequest(body, base, tokenizer, adapters);
  // generateStream checks every option before it returns and allocates nothing until iterated: the
  // SDK's RangeError/TypeError here names the field, so it is the client's (400); past this line an
  // error is the worker's (500)
  let tokens;
  try {
    tokens = generateStream(model, prompt, options);
  } catch (err) {
    if (err instanceof RangeError || err instanceof TypeError) throw bad(err.message);
    throw err;
  }
  const lease = admit(tokens);
  if (stream) return streamResponse(lease);
  const { ids, text, finishReason } = await collect(lease);
  return json({ ids, text: tokenizer ? text : undefined, finishReason, backend: model.backendName });
}

export default {
  async fetch(request, env) {
    try {
      return await route(request, env, new URL(request.url));
    } catch (err) {
      if (err instanceof HttpError) return json({ error: err.message }, err.status, err.headers);
      console.error(err);
      return json({ error: `internal error: ${err.message}` }, 500);
    }
  },
};
