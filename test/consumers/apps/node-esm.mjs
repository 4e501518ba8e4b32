// Node, ES modules: the scenario, then a model file through tinygpt/node, which shares the main
// entry's classes (one library instance). Prints one JSON line.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT, createModel } from 'tinygpt';
import { loadModelFile, saveModelFile } from 'tinygpt/node';
import { run } from './scenario.js';

const result = await run();
const dir = mkdtempSync(join(tmpdir(), 'tinygpt-esm-'));
const model = await createModel({ vocabSize: 8, maxSeqLen: 4, dModel: 8, nLayers: 1, nHeads: 2 }, { backend: 'wasm', wasmThreads: 1 });
await saveModelFile(join(dir, 'm.safetensors'), model);
const loaded = await loadModelFile(join(dir, 'm.safetensors'), { backend: 'wasm', wasmThreads: 1 });
const sameInstance = loaded.model instanceof GPT;
model.dispose();
loaded.model.dispose();
rmSync(dir, { recursive: true });
console.log(JSON.stringify({ ...result, sameInstance }));
