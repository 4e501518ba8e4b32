/**
 * The CLI's output and input files, checked before training runs; a checkpoint write that fails
 * mid-run keeps the model; temporaries of killed runs are removed; one exit code per kind of error
 * (2 wrong command line or input, 1 failed run). Before, a bad --out or --checkpoint failed only after
 * training had run, a failed checkpoint write lost the model, temporaries stayed forever and the
 * same kind of error exited 1 or 2.
 */
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/io/model-file.js';
import { decodeCheckpoint } from '../../src/train/checkpoint.js';

const cli = join(__dirname, '..', '..', 'dist', 'cli.js');

// root writes into read-only folders and files: permission cases run as nobody there
const asUser: SpawnSyncOptions = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};

function tinygpt(args: string[], options: SpawnSyncOptions = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000, ...options });
  return { code: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

const dir = mkdtempSync(join(tmpdir(), 'tinygpt-cli-files-'));
chmodSync(dir, 0o777);
const corpus = join(dir, 'names.txt');
writeFileSync(corpus, ['Anna', 'Bob', 'Clara', 'David', 'Emma', 'Frank', 'Grace', 'Henry'].join('\n'));
chmodSync(corpus, 0o644);
const small = [
  '--d-model',
  '8',
  '--layers',
  '1',
  '--heads',
  '2',
  '--seq-len',
  '8',
  '--batch-size',
  '2',
  '--samples',
  '0',
  '--backend',
  'js',
];

function folder(name: string, mode = 0o777): string {
  const path = join(dir, name);
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  return path;
}

describe('outputs are checked before training', () => {
  it('--out that is a directory: exit 2 naming the flag, before the tokenizer or the model are built', () => {
    const r = tinygpt(['train', '--data', corpus, '--lines', '--steps', '5', '--out', folder('a-folder'), ...small]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--out .*a-folder is a directory: give a file path/);
    expect(r.stderr).not.toMatch(/tokenizer:|parameters on the/);
  });

  it('--checkpoint in a read-only folder, or a read-only --out file: exit 2 before training', () => {
    const readOnly = folder('read-only', 0o555);
    let r = tinygpt(['train', '--data', corpus, '--lines', '--steps', '5', '--out', join(folder('w1'), 'm.safetensors'), ...small], asUser);
    expect(r.code).toBe(0); // the same run with writable outputs trains
    r = tinygpt(
      ['train', '--data', corpus, '--lines', '--steps', '5', '--out', join(folder('w2'), 'm.safetensors'), ...small, '--checkpoint'].concat(
        join(readOnly, 'ck.safetensors'),
      ),
      asUser,
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--checkpoint .*read-only\/ck\.safetensors: the folder .*read-only takes no new files \(EACCES\)/);
    expect(r.stderr).not.toMatch(/parameters on the/);

    const lockedFile = join(folder('w3'), 'locked.safetensors');
    writeFileSync(lockedFile, 'old');
    chmodSync(lockedFile, 0o444);
    r = tinygpt(['train', '--data', corpus, '--lines', '--steps', '5', '--out', lockedFile, ...small], asUser);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--out .*locked\.safetensors is read-only/);
    expect(readFileSync(lockedFile, 'utf8')).toBe('old');
  });

  it('--checkpoint that is not a regular file (/dev/full, where every write fails for want of room): exit 2 before training', () => {
    const r = tinygpt([
      'train',
      '--data',
      corpus,
      '--lines',
      '--steps',
      '5',
      '--out',
      join(dir, 'x.safetensors'),
      '--checkpoint',
      '/dev/full',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--checkpoint \/dev\/full is not a regular file/);
  });

  it('--out and --checkpoint without room (statfs mocked): exit 2 naming the flag and the sizes, before the first step', () => {
    // the CLI runs with node:fs's statfs reporting FAKE_FREE_BYTES free (1-byte blocks) in every folder
    const fakeStatfs = join(dir, 'fake-statfs.mjs');
    writeFileSync(
      fakeStatfs,
      "import fs from 'node:fs';\nimport { syncBuiltinESMExports } from 'node:module';\nconst real = fs.promises.statfs;\n" +
        'fs.promises.statfs = async (path, options) => ({ ...(await real(path, options)), bavail: Number(process.env.FAKE_FREE_BYTES), bsize: 1 });\n' +
        'syncBuiltinESMExports();\n',
    );
    const withFree = (free: number, args: string[]) => {
      const r = spawnSync(process.execPath, ['--import', fakeStatfs, cli, ...args], {
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, FAKE_FREE_BYTES: String(free) },
      });
      return { code: r.status, stderr: String(r.stderr) };
    };
    const where = folder('space');
    const out = join(where, 'm.safetensors');
    const checkpoint = join(where, 'run.ckpt');
    const run = ['train', '--data', corpus, '--lines', '--steps', '4', '--checkpoint-interval', '2', '--out', out, ...small];
    // with room: the files the run writes give the sizes the check must ask for
    expect(withFree(1e12, [...run, '--checkpoint', checkpoint]).code).toBe(0);
    const [modelBytes, checkpointBytes] = [readFileSync(out).length, readFileSync(checkpoint).length];

    // the model file's size is exact: one byte less is refused, naming --out
    let r = withFree(modelBytes - 1, run);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--out ${out}: the folder ${where} has ${modelBytes - 1} bytes`);
    expect(r.stderr).toContain(`but the model file takes up to ${modelBytes} bytes`);
    expect(r.stderr).not.toMatch(/step \d/);
    expect(withFree(modelBytes, run).code).toBe(0);

    // a checkpoint: the trainer's bound, at least what the run wrote and close to it
    r = withFree(checkpointBytes - 1, [...run, '--checkpoint', checkpoint]);
    expect(r.code).toBe(2);
    const bound = Number(
      /--checkpoint .*run\.ckpt: the folder .* free, but a checkpoint of this run takes up to (\d+) bytes/.exec(r.stderr)?.[1],
    );
    expect(bound).toBeGreaterThanOrEqual(checkpointBytes);
    expect(bound - checkpointBytes).toBeLessThan(2000);
    // on one file system the model file is written beside the last checkpoint: both must fit
    r = withFree(bound + modelBytes - 1, [...run, '--checkpoint', checkpoint]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`but the model file beside the last checkpoint takes up to ${bound + modelBytes} bytes`);
    expect(withFree(bound + modelBytes, [...run, '--checkpoint', checkpoint]).code).toBe(0);
  });

  it('inputs that cannot be read: exit 2 naming the flag', () => {
    let r = tinygpt(['train', '--data', join(dir, 'missing.txt')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--data .*missing\.txt: no such file/);
    r = tinygpt(['train', '--data', corpus, '--resume', join(dir, 'missing.safetensors'), '--out', join(dir, 'y.safetensors')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--resume .*missing\.safetensors: no such file/);
    r = tinygpt(['generate', '--model', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--model .* is a directory, not a file/);
  });
});

describe('temporary files of killed runs', () => {
  it('are removed on the next run beside --out and --checkpoint; other files stay', () => {
    const where = folder('stale');
    const out = join(where, 'model.safetensors');
    const checkpoint = join(where, 'run.ckpt');
    // what writeFileAtomic leaves when a run is killed between creating its temporary and renaming it
    writeFileSync(`${out}.tmp-0123456789ab`, 'partial');
    writeFileSync(`${checkpoint}.tmp-abcdef012345`, 'partial');
    writeFileSync(`${out}.tmp-mine`, 'not ours');
    writeFileSync(join(where, 'other.tmp-0123456789ab'), 'not ours');
    const r = tinygpt(['train', '--data', corpus, '--lines', '--steps', '3', '--out', out, '--checkpoint', checkpoint, ...small]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/removed .*model\.safetensors\.tmp-0123456789ab, left by an interrupted run/);
    expect(r.stderr).toMatch(/removed .*run\.ckpt\.tmp-abcdef012345, left by an interrupted run/);
    expect(readdirSync(where).sort()).toEqual(['model.safetensors', 'model.safetensors.tmp-mine', 'other.tmp-0123456789ab', 'run.ckpt']);
  });
});

describe('a checkpoint write that fails mid-run', () => {
  it('stops the run with exit 1, saves the model as of that step to --out, and the last checkpoint written still loads', async () => {
    const where = folder('ck-live');
    const moved = join(dir, 'ck-moved');
    const checkpoint = join(where, 'run.ckpt');
    const out = join(folder('ck-out'), 'model.safetensors');
    const args = ['train', '--data', corpus, '--lines', '--steps', '100000', '--checkpoint-interval', '1', '--eval-interval', '1000'];
    const child = spawn(process.execPath, [cli, ...args, '--out', out, '--checkpoint', checkpoint, ...small]);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    // once a checkpoint exists, its folder goes away from under the run: the next write fails
    while (!existsSync(checkpoint)) await new Promise((resolve) => setTimeout(resolve, 5));
    renameSync(where, moved);
    const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 100_000))]);
    if (code === 'hung') child.kill('SIGKILL');
    expect(code).toBe(1);
    const failed =
      /writing the checkpoint of step (\d+) failed .*training stopped there\. The last checkpoint written \(step (\d+)\) is whole and loads; the model as of step (\d+) is saved to/.exec(
        stderr,
      );
    expect(failed, stderr).not.toBeNull();
    const [failedStep, lastGood, savedStep] = failed!.slice(1).map(Number);
    expect(lastGood).toBeLessThan(failedStep);
    expect(savedStep).toBe(failedStep);
    // the last good checkpoint is whole, and the model file loads
    const saved = decodeCheckpoint(new Uint8Array(readFileSync(join(moved, 'run.ckpt'))));
    expect(saved.state.step).toBe(lastGood);
    const { model } = await loadModel(new Uint8Array(readFileSync(out)), { backend: 'js' });
    expect(model.config.dModel).toBe(8);
    model.dispose();
  }, 150_000);
});

describe('one exit code per kind of error, documented in --help', () => {
  it('2 for every wrong command line or input, whichever layer refuses it', () => {
    const out = ['--out', join(dir, 'z.safetensors')];
    // refused by the CLI's flag parsing, by createModel's config check, by createModel's options
    for (const args of [
      ['train', '--data', corpus, '--steps', 'x', ...out],
      ['train', '--data', corpus, '--steps', '1', '--d-model', '16', '--heads', '3', '--samples', '0', ...out],
      ['train', '--data', corpus, '--steps', '1', '--backend', 'tpu', ...out],
      ['train', '--data', corpus, '--steps', '1', '--lr', '1e400', ...out],
    ]) {
      const r = tinygpt(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
    }
    const notAModel = join(dir, 'not-a-model.safetensors');
    writeFileSync(notAModel, 'garbage');
    const r = tinygpt(['generate', '--model', notAModel]);
    expect(r.code).toBe(2);
    expect(tinygpt([]).code).toBe(2);
  });

  it('the codes are in the main help', () => {
    expect(tinygpt(['--help']).stdout).toMatch(/Exit codes: 0 done .*; 2 the command line or an input is\s+wrong .*; 1 the run failed/s);
  });
});
