// Runs every benchmark one after another (never two at once: they share the cores) and prints
// their markdown tables. `npm run bench` builds first; `npm run bench -- matmul train` picks some.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const all = ['matmul', 'train', 'generate', 'decode', 'tokenizer'];
const picked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = picked.filter((p) => !all.includes(p) && p !== 'webgpu');
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; choose from ${[...all, 'webgpu'].join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const name of picked.length ? picked : all) {
  console.log(`\n## ${name}\n`);
  const r = spawnSync(process.execPath, ['--expose-gc', join(here, `${name}.mjs`)], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`bench/${name}.mjs exited with ${r.status}`);
    failed++;
  }
}
process.exitCode = failed ? 1 : 0;
