import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate } from '../../src/generate/generate.js';
import { loadModel } from '../../src/io/model-file.js';

// The command as users run it: the built bundle (npm test builds first).
const cli = join(__dirname, '..', '..', 'dist', 'cli.js');

function tinygpt(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the tinygpt command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tinygpt-cli-'));
  const corpus = join(dir, 'names.txt');
  writeFileSync(corpus, ['Anna', 'Bob', 'Clara', 'David', 'Emma', 'Frank', 'Grace', 'Henry', 'Iris', 'Jack', 'Kate', 'Liam'].join('\n'));
  const model = join(dir, 'model.safetensors');

  it('trains, shows progress and the chart, saves a loadable model and prints samples', async () => {
    const r = tinygpt([
      'train',
      '--data',
      corpus,
      '--lines',
      '--out',
      model,
      '--d-model',
      '16',
      '--layers',
      '1',
      '--heads',
      '2',
      '--seq-len',
      '8',
      '--steps',
      '30',
      '--eval-interval',
      '10',
      '--batch-size',
      '4',
      '--samples',
      '2',
      '--backend',
      'wasm',
      '--threads',
      '1',
    ]);
    expect(r.stderr).toMatch(/model: 0\.\d\dM parameters on the wasm backend \(1 thread\)/);
    expect(r.stderr).toMatch(/30\/30 {2}loss \d\.\d{4} {2}lr /);
    expect(r.stderr).toMatch(/step 10: val loss \d\.\d{4}, perplexity/);
    expect(r.stdout).toMatch(/\(step\)/);
    expect(r.stdout).toMatch(/done after 30 steps/);
    expect(r.code).toBe(0);
    const { model: loaded, tokenizer } = await loadModel(new Uint8Array(readFileSync(model)), { backend: 'js' });
    expect(loaded.config).toMatchObject({ dModel: 16, nLayers: 1, nHeads: 2, maxSeqLen: 8 });
    expect(tokenizer?.kind).toBe('char');
    loaded.dispose();
  });

  it('generates from the saved model, the same text for the same seed', () => {
    const args = ['generate', '--model', model, '--prompt', 'A', '--max-new-tokens', '5', '--seed', '3', '--backend', 'wasm'];
    const a = tinygpt(args);
    const b = tinygpt(args);
    expect(a.code).toBe(0);
    expect(a.stdout.startsWith('A')).toBe(true);
    expect(a.stdout).toBe(b.stdout);
  });

  it('generate --beams prints the best beam, the same text as the library gives', async () => {
    const r = tinygpt(['generate', '--model', model, '--prompt', 'A', '--max-new-tokens', '4', '--beams', '3', '--backend', 'js']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { model: loaded, tokenizer } = await loadModel(new Uint8Array(readFileSync(model)), { backend: 'js' });
    const ids = [tokenizer!.eosTokenId!, ...tokenizer!.encode('A')];
    const expected = await generate(loaded, ids, { tokenizer, maxNewTokens: 4, numBeams: 3 });
    expect(r.stdout).toBe(`A${expected.text}\n`);
    loaded.dispose();
  });

  it('integer flags are decimal only', () => {
    for (const steps of ['0x10', '1e', '', ' 5']) {
      const r = tinygpt(['train', '--data', corpus, `--steps=${steps}`]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--steps must be a positive integer/);
    }
  });

  it('refuses bad flags with exit code 2 and a message naming the flag', () => {
    const missing = tinygpt(['train']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--data <file> is required/);
    const bad = tinygpt(['train', '--data', corpus, '--steps=-3']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--steps must be a positive integer, got "-3"/);
    const unknown = tinygpt(['train', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/bogus/);
    const lost = tinygpt(['train', '--data', corpus, '--on-device-lost', 'cpu']);
    expect(lost.code).toBe(2);
    expect(lost.stderr).toMatch(/--on-device-lost must be 'error' or 'wasm', got 'cpu'/);
    expect(tinygpt(['fly']).stderr).toMatch(/unknown command "fly"/);
  });

  it('prints help for each command', () => {
    expect(tinygpt(['train', '--help']).stdout).toMatch(/--grad-accum <value> +micro-batches per step/);
    expect(tinygpt(['generate', '--help']).stdout).toMatch(/--top-p <value> +nucleus sampling/);
    expect(tinygpt(['--help']).stdout).toMatch(/tinygpt train --data corpus\.txt/);
  });
});
