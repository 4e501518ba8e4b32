// What a generate call sets aside and costs on wasm, on GPT-2 small's shape (random weights): the
// wasm memory (which never shrinks, so it is each run's peak) after model creation and after a few
// short generations, and the median time of one call. Each --cases entry runs in a fresh process.
//
//   node bench/generate-memory.mjs [--prompt 8] [--new 8,16] [--beams 1,4] [--calls 5]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const GPT2_SMALL = { vocabSize: 50257, maxSeqLen: 1024, dModel: 768, nLayers: 12, nHeads: 12, seed: 1 };
const MiB = 2 ** 20;

if (process.argv[2] === '--case') {
  const [promptLength, maxNewTokens, numBeams, calls] = process.argv.slice(3).map(Number);
  const { createModel, generate } = await import('../dist/index.js');
  const model = await createModel(GPT2_SMALL, { backend: 'wasm', wasmThreads: 1 });
  const afterCreate = model.backend.memoryBytes;
  const prompt = Array.from({ length: promptLength }, (_, i) => (i * 7919) % GPT2_SMALL.vocabSize);
  const options = { maxNewTokens, numBeams, eosTokenId: null };
  await generate(model, prompt, options);
  const times = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await generate(model, prompt, options);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ afterCreate, afterGenerate: model.backend.memoryBytes, ms: times[Math.floor(times.length / 2)] }));
  model.dispose();
} else {
  const promptLength = Number(option('prompt', '8'));
  const news = option('new', '8,16').split(',').map(Number);
  const beams = option('beams', '1,4').split(',').map(Number);
  const calls = Number(option('calls', '5'));
  console.log(
    `GPT-2 small's shape on wasm (1 thread, random weights), a ${promptLength}-token prompt, median of ${calls} calls, Node ${process.versions.node}\n`,
  );
  console.log('| new tokens | beams | wasm memory after createModel | after generate | set aside by generate | ms per call |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const maxNewTokens of news) {
    for (const numBeams of beams) {
      const run = spawnSync(
        process.execPath,
        [...process.execArgv, fileURLToPath(import.meta.url), '--case', promptLength, maxNewTokens, numBeams, calls],
        { encoding: 'utf8' },
      );
      if (run.status !== 0) throw new Error(run.stderr);
      const r = JSON.parse(run.stdout.trim().split('\n').pop());
      console.log(
        `| ${maxNewTokens} | ${numBeams} | ${(r.afterCreate / MiB).toFixed(0)} MiB | ${(r.afterGenerate / MiB).toFixed(0)} MiB | ${((r.afterGenerate - r.afterCreate) / MiB).toFixed(0)} MiB | ${r.ms.toFixed(0)} |`,
      );
    }
  }
}
