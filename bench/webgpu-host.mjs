// Where the host's time goes while WebGPU decodes: the recorder's dispatch (binding plan, uniforms,
// pipeline and bind-group caches) and each Dawn call, timed by wrappers around them over a few
// seconds of greedy decoding after a warm-up. Complements bench/webgpu-profile.mjs, which times the
// GPU side; the wrappers add ~0.1 us per call.
//
//   node bench/webgpu-host.mjs [--config C] [--prompt 8] [--seconds 4]
//
// Config C is GPT-2 small (V 50257, C 768, L 12, H 12); B and S in bench/lib/webgpu-configs.mjs. Reaches
// into the backend's recorder (`backend.rec`), as webgpu-profile.mjs does. Needs the built package.
import { configOption, option } from './lib/webgpu-configs.mjs';
import { installNodeWebGPU } from './lib/webgpu-node.mjs';

const { configName, config } = configOption();
const promptLength = Number(option('prompt', '8'));
const seconds = Number(option('seconds', '4'));
if (!(Number.isInteger(promptLength) && promptLength >= 1 && promptLength + 32 <= config.maxSeqLen))
  throw new Error(`--prompt: ${promptLength} must be an integer in [1, ${config.maxSeqLen - 32}]`);
if (!(seconds > 0)) throw new Error(`--seconds: ${seconds} must be positive`);

installNodeWebGPU();
const { createModel, generate } = await import('../dist/index.js');
const model = await createModel({ ...config, seed: 1 }, { backend: 'webgpu' });
const { rec, device } = model.backend;
const prompt = Array.from({ length: promptLength }, (_, i) => (i * 7919) % config.vocabSize);
const decode = () => generate(model, prompt, { maxNewTokens: 32, eosTokenId: null });

// warm-up: every pipeline compiled, the GPU's clocks up
for (const start = performance.now(); performance.now() - start < 3000;) await decode();

const stats = new Map();
function timed(proto, method, label) {
  const original = proto[method];
  const s = { calls: 0, ms: 0, slow: 0 };
  stats.set(label, s);
  proto[method] = function (...args) {
    const t = performance.now();
    try {
      return original.apply(this, args);
    } finally {
      const d = performance.now() - t;
      s.calls++;
      s.ms += d;
      if (d > 1) s.slow++;
    }
  };
}
const encoder = device.createCommandEncoder();
const pass = encoder.beginComputePass();
const passProto = Object.getPrototypeOf(pass);
pass.end();
encoder.finish();
timed(Object.getPrototypeOf(rec), 'dispatch', 'recorder.dispatch (everything below down to the Dawn pass calls)');
timed(Object.getPrototypeOf(rec.pipelines), 'get', 'pipeline cache');
timed(Object.getPrototypeOf(rec.pipelines), 'bindGroup', 'bind-group cache');
timed(passProto, 'setPipeline', 'Dawn: pass.setPipeline');
timed(passProto, 'setBindGroup', 'Dawn: pass.setBindGroup');
timed(passProto, 'dispatchWorkgroups', 'Dawn: pass.dispatchWorkgroups');
timed(Object.getPrototypeOf(rec), 'flush', 'recorder.flush (a submission)');
timed(Object.getPrototypeOf(device.queue), 'submit', 'Dawn: queue.submit');
timed(Object.getPrototypeOf(device.queue), 'writeBuffer', 'Dawn: queue.writeBuffer');
timed(Object.getPrototypeOf(encoder), 'beginComputePass', 'Dawn: encoder.beginComputePass');
timed(Object.getPrototypeOf(model.backend), 'download', 'backend.download (the token read back)');

let tokens = 0;
const start = performance.now();
while (performance.now() - start < seconds * 1000) {
  await decode();
  tokens += 32;
}
const wall = performance.now() - start;
console.log(
  `WebGPU host time per decoded token on ${model.backend.adapterName}; config ${configName}, prompt ${promptLength}, 32 new tokens per call\n`,
);
console.log('| call | calls per token | us per call | ms per token | calls over 1 ms |');
console.log('|---|---:|---:|---:|---:|');
for (const [label, s] of stats) {
  console.log(
    `| ${label} | ${(s.calls / tokens).toFixed(1)} | ${((1000 * s.ms) / Math.max(1, s.calls)).toFixed(1)} | ${(s.ms / tokens).toFixed(3)} | ${s.slow} |`,
  );
}
console.log(`\nwall time per token (generate, end to end): ${(wall / tokens).toFixed(3)} ms`);
model.dispose();
process.exit(0);
