/**
 * The CLI's files, checked before any work: an input that cannot be read, an output that is a
 * directory, read-only, in a folder that takes no new files or lacks the room, are refused naming
 * the flag (exit code 2) instead of failing after a long training run. Temporary files that a
 * killed run left beside an output (writeFileAtomic's `<name>.tmp-<12 hex digits>`) are removed.
 */
import { constants } from 'node:fs';
import { access, open, readdir, rm, stat, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ArenaLimitError } from '../backend/wasm/arena.js';
import { checkFreeSpaceWith, NoSpaceError, temporaryPathFor } from '../io/files.js';
import { ModelFileError } from '../io/errors.js';
import { ConfigError } from '../model/config.js';

/** The command line or an input is wrong: exit code 2. */
export class UsageError extends Error {}

/** Exit codes: 2 when the command line or an input is wrong, 1 when the run itself failed. */
export const EXIT_USAGE = 2;
export const EXIT_FAILURE = 1;

/**
 * 2 for a wrong command line or input: a flag, an input file that cannot be read or is not what it
 * should be, an output that cannot be written, a setting the library refuses (its TypeError and
 * RangeError name the option). 1 for a run that failed: a write that failed part-way, a lost
 * device, a full arena, a non-finite loss.
 */
export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError || err instanceof ModelFileError || err instanceof ConfigError) return EXIT_USAGE;
  if ((err as { code?: unknown })?.code?.toString().startsWith('ERR_PARSE_ARGS')) return EXIT_USAGE;
  if (err instanceof ArenaLimitError) return EXIT_FAILURE;
  if (err instanceof TypeError || err instanceof RangeError) return EXIT_USAGE;
  return EXIT_FAILURE;
}

/** an fs error's code (ENOENT, EACCES...), else its message */
function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : 'unknown error';
}

/** `path`, given as --flag, must be a readable file. */
export async function checkInput(flag: string, path: string): Promise<void> {
  const info = await stat(path).catch((err: unknown) => {
    throw new UsageError(`--${flag} ${path}: ${codeOf(err) === 'ENOENT' ? 'no such file' : `cannot be read (${codeOf(err)})`}`);
  });
  if (info.isDirectory()) throw new UsageError(`--${flag} ${path} is a directory, not a file`);
  await access(path, constants.R_OK).catch((err: unknown) => {
    throw new UsageError(`--${flag} ${path}: cannot be read (${codeOf(err)})`);
  });
}

/**
 * `path`, given as --flag, can be written the way writeFileAtomic writes it (a temporary file
 * beside it, then a rename): not a directory nor another non-file, not read-only, in an existing
 * folder that takes new files. Returns the stale temporaries of killed runs it removed.
 */
export async function prepareOutput(flag: string, path: string): Promise<string[]> {
  const info = await stat(path).catch((err: unknown) => {
    if (codeOf(err) === 'ENOENT') return null;
    throw new UsageError(`--${flag} ${path}: cannot be examined (${codeOf(err)})`);
  });
  if (info?.isDirectory()) {
    throw new UsageError(
      `--${flag} ${path} is a directory: give a file path, such as ${join(path, basename(path) || 'model')}.safetensors`,
    );
  }
  if (info && !info.isFile()) throw new UsageError(`--${flag} ${path} is not a regular file`);
  if (info) {
    await access(path, constants.W_OK).catch(() => {
      throw new UsageError(`--${flag} ${path} is read-only: make it writable or give another path`);
    });
  }
  const folder = dirname(path);
  const folderInfo = await stat(folder).catch(() => null);
  if (!folderInfo?.isDirectory()) throw new UsageError(`--${flag} ${path}: the folder ${folder} does not exist`);
  // a probe written the way the real write is: a new file beside the target
  const probe = temporaryPathFor(path);
  try {
    const handle = await open(probe, 'wx');
    await handle.close();
  } catch (err) {
    throw new UsageError(`--${flag} ${path}: the folder ${folder} takes no new files (${codeOf(err)}): read-only or no permission`);
  } finally {
    await rm(probe, { force: true }).catch(() => undefined);
  }
  return removeStaleTemporaries(path);
}

/** --flag's folder must have room for `bytes` (the new file is written before the old one goes). */
export async function checkRoom(flag: string, path: string, bytes: number, what: string): Promise<void> {
  try {
    await checkFreeSpaceWith(statfs, `--${flag}`, path, bytes, what);
  } catch (err) {
    if (err instanceof NoSpaceError) throw new UsageError(err.message);
    throw err;
  }
}

/** whether the folders of `a` and `b` are on one file system (what one file takes, the other cannot have) */
export async function sameFileSystem(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([stat(dirname(a)).catch(() => null), stat(dirname(b)).catch(() => null)]);
  return x !== null && y !== null && x.dev === y.dev;
}

/** Remove `<name>.tmp-<12 hex digits>` files beside `path` (writeFileAtomic's temporaries of killed runs). */
export async function removeStaleTemporaries(path: string): Promise<string[]> {
  const folder = dirname(path);
  const prefix = `${basename(path)}.tmp-`;
  const names = (await readdir(folder).catch(() => [] as string[])).filter(
    (name) => name.startsWith(prefix) && /^[0-9a-f]{12}$/.test(name.slice(prefix.length)),
  );
  const removed: string[] = [];
  for (const name of names) {
    const full = join(folder, name);
    const info = await stat(full).catch(() => null);
    if (!info?.isFile()) continue;
    await rm(full, { force: true });
    removed.push(full);
  }
  return removed;
}
