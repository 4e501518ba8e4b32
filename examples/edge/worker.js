// A Cloudflare Worker (ES module syntax) that serves text generation from a tinygpt model file.
//
//   GET  /generate?prompt=ma&maxNewTokens=20&temperature=0.8&topK=10&seed=1
//   POST /generate  {"prompt": "ma", "maxNewTokens": 20, "temperature": 0.8, "stream": true}
//   GET  /info      the model's config, backend and tokenizer kind
//
// Edge runtimes refuse to compile WebAssembly from bytes, so the kernels arrive as a module import
// (a compiled WebAssembly.Module) and are handed to the SDK once with setWasmModule. The model file
// comes from the MODEL binding (its bytes, e.g. a workerd data binding) or is fetched once from
// MODEL_URL; either way it is parsed once per isolate and reused across requests.
import { generate, generateStream, loadModel, setWasmModule } from 'tinygpt';
import tinygptWasm from 'tinygpt/tinygpt.wasm';

setWasmModule(tinygptWasm);

/** generation options a request may set; everything else is refused */
const OPTION_NAMES = ['maxNewTokens', 'temperature', 'topK', 'topP', 'minP', 'repetitionPenalty', 'noRepeatNgramSize', 'seed', 'stop'];
const INTEGER_OPTIONS = new Set(['maxNewTokens', 'topK', 'noRepeatNgramSize', 'seed']);
/** a ceiling per request, so one request cannot hold the isolate for long */
const MAX_NEW_TOKENS_LIMIT = 256;

let modelPromise;

async function loadModelFile(env) {
  let bytes;
  if (env.MODEL) {
    bytes = new Uint8Array(env.MODEL);
  } else if (env.MODEL_URL) {
    const response = await fetch(env.MODEL_URL);
    if (!response.ok) throw new Error(`fetching MODEL_URL ${env.MODEL_URL} failed: HTTP ${response.status}`);
    bytes = new Uint8Array(await response.arrayBuffer());
  } else {
    throw new Error('no model: bind the model file as MODEL (bytes) or set MODEL_URL');
  }
  // Workers have no WebGPU: the wasm kernels run the model
  return loadModel(bytes, { backend: 'wasm' });
}

/** the model and tokenizer, parsed once per isolate; a failed load is retried by the next request */
function loadOnce(env) {
  if (!modelPromise) {
    modelPromise = loadModelFile(env);
    modelPromise.catch(() => (modelPromise = undefined));
  }
  return modelPromise;
}

// One generation at a time per isolate: requests share the model and its scratch buffers.
let queue = Promise.resolve();
function exclusive(task) {
  const run = queue.then(task);
  queue = run.then(
    () => undefined,
    () => undefined,
  );
  return run;
}

class BadRequest extends Error {}

async function readRequest(request, url) {
  if (request.method === 'GET') {
    const params = Object.fromEntries(url.searchParams);
    const body = {};
    for (const [key, value] of Object.entries(params)) {
      if (key === 'prompt' || key === 'stop') body[key] = value;
      else if (key === 'ids') body.ids = value === '' ? [] : value.split(',').map(Number);
      else if (key === 'stream') body.stream = value === '1' || value === 'true';
      else body[key] = value === '' ? NaN : Number(value);
    }
    return body;
  }
  if (request.method === 'POST') {
    try {
      return await request.json();
    } catch {
      throw new BadRequest('the request body must be JSON');
    }
  }
  throw new BadRequest(`method ${request.method} not allowed: use GET or POST`);
}

/** prompt (text, needs the model's tokenizer) or ids, and the generation options, checked */
function planRequest(body, tokenizer) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('the request must be a JSON object');
  const allowed = new Set(['prompt', 'ids', 'stream', ...OPTION_NAMES]);
  for (const key of Object.keys(body)) {
    if (!allowed.has(key)) throw new BadRequest(`unknown field "${key}"; allowed: ${[...allowed].join(', ')}`);
  }
  let prompt;
  if (body.ids !== undefined) {
    if (!Array.isArray(body.ids)) throw new BadRequest(`ids must be an array of token ids, got ${JSON.stringify(body.ids)}`);
    prompt = body.ids;
  } else {
    if (typeof body.prompt !== 'string') throw new BadRequest('give prompt (a string) or ids (token ids)');
    if (!tokenizer) throw new BadRequest('this model file has no tokenizer: send ids instead of a text prompt');
    prompt = body.prompt;
  }
  const options = { tokenizer, doSample: true, maxNewTokens: 32 };
  for (const name of OPTION_NAMES) {
    const value = body[name];
    if (value === undefined) continue;
    if (name !== 'stop' && (typeof value !== 'number' || Number.isNaN(value)))
      throw new BadRequest(`${name} must be a number, got ${JSON.stringify(value)}`);
    if (INTEGER_OPTIONS.has(name) && !Number.isInteger(value)) throw new BadRequest(`${name} must be an integer, got ${value}`);
    options[name] = value;
  }
  if (options.maxNewTokens > MAX_NEW_TOKENS_LIMIT) {
    throw new BadRequest(`maxNewTokens must be at most ${MAX_NEW_TOKENS_LIMIT} here, got ${options.maxNewTokens}`);
  }
  return { prompt, options, stream: body.stream === true };
}

function json(data, status = 200) {
  return new Response(JSON.stringify(data), { status, headers: { 'content-type': 'application/json; charset=utf-8' } });
}

/** Server-sent events: one `data: {"id", "text"}` event per token, then `event: done`. */
function streamResponse(model, prompt, options) {
  const encoder = new TextEncoder();
  const { readable, writable } = new TransformStream();
  const writer = writable.getWriter();
  const send = (event, data) => writer.write(encoder.encode(`${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`));
  // options are checked before the response starts, so a bad request still gets a 400
  const tokens = generateStream(model, prompt, options);
  exclusive(async () => {
    try {
      for await (const token of tokens) await send(null, { id: token.id, text: token.text ?? '', finishReason: token.finishReason });
      await send('done', {});
    } catch (err) {
      await send('error', { error: err.message });
    } finally {
      await writer.close();
    }
  });
  return new Response(readable, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' } });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    try {
      if (url.pathname === '/info') {
        const { model, tokenizer } = await loadOnce(env);
        return json({
          config: model.config,
          backend: model.backendName,
          parameters: model.numParameters(),
          tokenizer: tokenizer?.kind ?? null,
        });
      }
      if (url.pathname !== '/generate') {
        return json({ error: `no route ${url.pathname}: use /generate (GET with query parameters, or POST JSON) or /info` }, 404);
      }
      const body = await readRequest(request, url);
      const { model, tokenizer } = await loadOnce(env);
      const { prompt, options, stream } = planRequest(body, tokenizer);
      if (stream) return streamResponse(model, prompt, options);
      const result = await exclusive(() => generate(model, prompt, options));
      return json({ ids: result.ids, text: result.text, finishReason: result.finishReason, backend: model.backendName });
    } catch (err) {
      // the SDK names the field, the value and the allowed range in its RangeError/TypeError
      const clientError = err instanceof BadRequest || err instanceof RangeError || err instanceof TypeError;
      return json({ error: err.message }, clientError ? 400 : 500);
    }
  },
};
