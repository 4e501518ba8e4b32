/**
 * `tinygpt train --plot` and `tinygpt plot`, run from the built bundle: the picture written after
 * training is the one `tinygpt plot` draws from the run's checkpoint and from its history as JSON,
 * and it holds the run's steps.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../../src/train/checkpoint.js';
import { plotHistorySVG } from '../../src/plot/history-svg.js';

const cli = join(__dirname, '..', '..', 'dist', 'cli.js');

function tinygpt(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!existsSync(cli))('tinygpt train --plot and tinygpt plot', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tinygpt-plot-'));
  const corpus = join(dir, 'names.txt');
  writeFileSync(corpus, ['Anna', 'Bob', 'Clara', 'David', 'Emma', 'Frank', 'Grace', 'Henry', 'Iris', 'Jack', 'Kate', 'Liam'].join('\n'));
  const checkpoint = join(dir, 'run.ckpt.safetensors');
  const plotted = join(dir, 'run.svg');

  it('train --plot writes the curves of the run', () => {
    const r = tinygpt(
      [
        ['train', '--data', corpus, '--lines', '--out', join(dir, 'model.safetensors'), '--plot', plotted, '--checkpoint', checkpoint],
        ['--d-model', '16', '--layers', '1', '--heads', '2', '--seq-len', '8', '--steps', '20', '--eval-interval', '5'],
        ['--batch-size', '4', '--samples', '0', '--backend', 'wasm', '--threads', '1'],
      ].flat(),
    );
    expect(r.stderr + r.stdout).toMatch(/plotted .*run\.svg/);
    expect(r.code).toBe(0);
    const svg = readFileSync(plotted, 'utf8');
    const history = decodeCheckpoint(new Uint8Array(readFileSync(checkpoint))).state.history;
    expect(history).toHaveLength(20);
    // the file is the drawing of the run's own history
    expect(svg).toBe(plotHistorySVG(history));
    const points = /<polyline data-series="train-loss"[^>]* points="([^"]*)"/.exec(svg)![1].split(' ');
    expect(points).toHaveLength(20);
    expect(svg.match(/<circle cx/g)!.length).toBe(4 + 1); // 4 validation marks and the legend's
  });

  it('plot draws the same picture from the checkpoint and from the history as JSON', () => {
    const fromCheckpoint = join(dir, 'from-checkpoint.svg');
    let r = tinygpt(['plot', checkpoint, '-o', fromCheckpoint]);
    expect(r.stdout).toMatch(/plotted 20 history entries \(steps 1 to 20\)/);
    expect(r.code).toBe(0);
    expect(readFileSync(fromCheckpoint, 'utf8')).toBe(readFileSync(plotted, 'utf8'));

    const json = join(dir, 'history.json');
    writeFileSync(json, JSON.stringify({ history: decodeCheckpoint(new Uint8Array(readFileSync(checkpoint))).state.history }));
    r = tinygpt(['plot', json]);
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, 'history.svg'), 'utf8')).toBe(readFileSync(plotted, 'utf8'));
  });

  it('plot refuses a model file, a missing argument and a stray flag, saying why', () => {
    let r = tinygpt(['plot', join(dir, 'model.safetensors')]);
    expect(r.stderr).toMatch(/model\.safetensors: neither JSON nor a tinygpt training checkpoint.*give the --checkpoint file/);
    // a wrong input file is a usage error (2), like a wrong flag
    expect(r.code).toBe(2);
    r = tinygpt(['plot']);
    expect(r.stderr).toMatch(/plot takes one file/);
    expect(r.code).toBe(2);
    r = tinygpt(['plot', checkpoint, '--width', '3']);
    expect(r.stderr).toMatch(/Unknown option '--width'/);
    expect(r.code).toBe(2);
  });
});
