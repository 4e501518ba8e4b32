/**
 * examples/chapter5 (the chapter "Training and Text Generation" in tinygpt), run on the built
 * bundle with 2 epochs, twice: sampling seeds 1 and 2 over the same training. What it prints must
 * show the chapter's results: falling losses, a reported validation loss, text from every
 * strategy, beam search and greedy unchanged by the sampling seed (while samples change), and
 * fewer repeated tokens with repetition_penalty 1.2 than with 1.0 (greedy, where the penalty is the
 * only difference: sampled, a model this undertrained repeats 0-3 tokens of 30 either way).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/static-server.js';

const SCRIPT = join(REPO_ROOT, 'examples', 'chapter5', 'chapter5.mjs');
const built = existsSync(join(REPO_ROOT, 'dist', 'node.js')) && existsSync(join(REPO_ROOT, 'dist', 'gpt2.js'));

interface Run {
  stdout: string;
  out: string;
}

function runChapter(seed: number): Run {
  const out = mkdtempSync(join(tmpdir(), 'tinygpt-chapter5-'));
  const r = spawnSync(process.execPath, [SCRIPT, '--epochs', '2', '--seed', String(seed), '--out', out], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (r.status !== 0) throw new Error(`chapter5.mjs exited with ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return { stdout: r.stdout, out };
}

const numbers = (stdout: string, pattern: RegExp): number[] => [...stdout.matchAll(pattern)].map((m) => Number(m[1]));
const line = (stdout: string, label: string): string => {
  const m = new RegExp(`^${label}: "(.*)"$`, 'm').exec(stdout);
  if (!m) throw new Error(`no line "${label}" in:\n${stdout}`);
  return JSON.parse(`"${m[1]}"`) as string;
};
const PROMPT = 'The quick brown';

describe.skipIf(!built)(`examples/chapter5${built ? '' : ' (skipped: run `npm run build` first)'}`, () => {
  let first: Run;
  let second: Run;
  beforeAll(() => {
    first = runChapter(1);
    second = runChapter(2);
  }, 1_200_000);

  it('prints the vocabulary, the data and the model of the chapter', () => {
    expect(first.stdout).toContain('Vocabulary size: 50257');
    expect(first.stdout).toContain('Training texts: 100, validation texts: 2');
    // 50257 x 128 embeddings (tied head) + 64 x 128 positions + 4 blocks + the final LayerNorm
    const blocks = 4 * (2 * 2 * 128 + (128 * 384 + 384) + (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128));
    expect(first.stdout).toContain(`Model parameters: ${(50257 * 128 + 64 * 128 + blocks + 2 * 128).toLocaleString('en-US')}`);
  });

  it('training losses fall, the validation loss is reported, and the run is deterministic', () => {
    const losses = numbers(first.stdout, /^Step \d+: train loss ([\d.]+)/gm);
    expect(numbers(first.stdout, /^Training steps: (\d+)$/gm)).toEqual([25]); // 2 epochs of 100 texts, 8 a step
    expect(losses.length).toBe(5); // a line every 5 steps
    expect(losses.at(-1)!).toBeLessThan(losses[0] - 1);
    const valLosses = numbers(first.stdout, /^Step \d+: val loss ([\d.]+)/gm);
    expect(valLosses.length).toBe(2); // step 20 and the last step
    const best = numbers(first.stdout, /^Best val loss: ([\d.]+)$/gm);
    expect(best).toEqual([Math.min(...valLosses)]);
    expect(numbers(first.stdout, /^Final train loss: ([\d.]+)$/gm)).toHaveLength(1);
    const training = (s: string) => s.slice(s.indexOf('=== Training'), s.indexOf('=== Plot'));
    expect(training(second.stdout)).toBe(training(first.stdout));
  });

  it('writes the two-panel plot of the run', () => {
    const svg = readFileSync(join(first.out, 'training.svg'), 'utf8');
    expect(svg).toContain('data-panel="loss"');
    expect(svg).toContain('data-panel="lr"');
    // a history entry every 5 steps: one point each
    expect(first.stdout).toContain('(5 history entries)');
    expect(/<polyline data-series="train-loss"[^>]* points="([^"]*)"/.exec(svg)![1].split(' ')).toHaveLength(5);
    expect(svg.match(/<circle cx/g)).toHaveLength(2 + 1); // the two validation points and the legend's mark
    expect(existsSync(join(first.out, 'checkpoint.safetensors'))).toBe(true);
  });

  it('every temperature, strategy and variation generates text after the prompt', () => {
    const labels = [
      'Temperature 0.5',
      'Temperature 1',
      'Temperature 1.5',
      'Strategy greedy',
      'Strategy top-k',
      'Strategy top-p',
      'Strategy beam',
      ...[1, 2, 3, 4, 5].map((i) => `Variation ${i}`),
    ];
    for (const label of labels) {
      const text = line(first.stdout, label);
      expect(text.startsWith(PROMPT), label).toBe(true);
      expect(text.length, label).toBeGreaterThan(PROMPT.length);
    }
    const variations = [1, 2, 3, 4, 5].map((i) => line(first.stdout, `Variation ${i}`));
    expect(new Set(variations).size).toBeGreaterThan(1);
  });

  it('beam search and greedy ignore the sampling seed; sampling does not', () => {
    expect(line(second.stdout, 'Strategy beam')).toBe(line(first.stdout, 'Strategy beam'));
    expect(line(second.stdout, 'Strategy greedy')).toBe(line(first.stdout, 'Strategy greedy'));
    const sampled = (s: string) => [1, 2, 3, 4, 5].map((i) => line(s, `Variation ${i}`)).join('\n');
    expect(sampled(second.stdout)).not.toBe(sampled(first.stdout));
  });

  it('repetition_penalty 1.2 repeats fewer tokens than 1.0 in greedy decoding, and the sampled pair is printed', () => {
    for (const { stdout } of [first, second]) {
      const [plain, penalised] = numbers(stdout, /^Repetition penalty \d\.\d, greedy \((\d+) repeated of 30 tokens\)/gm);
      expect(penalised).toBeLessThan(plain);
      expect(numbers(stdout, /^Repetition penalty \d\.\d, sampled \((\d+) repeated of 30 tokens\)/gm)).toHaveLength(2);
    }
  });
});
