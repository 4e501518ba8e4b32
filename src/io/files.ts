/**
 * Runtime-agnostic core of file writing: the atomic-replace protocol over a minimal file-system
 * interface, so Node's fs (src/io/node-files.ts) and test doubles that fail midway share one code
 * path.
 */

import { typedArrayName } from './safetensors.js';
import { formatBytes } from '../backend/capacity.js';
import { fileSystem } from '../host/node.js';

/** The part of an open file that an atomic write needs (a subset of node:fs/promises FileHandle). */
export interface WritableFileHandle {
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The file-system calls an atomic write makes (a subset of node:fs/promises). */
export interface AtomicWriteFs {
  /** open for writing, failing if the path exists ('wx') */
  open(path: string, flags: 'wx'): Promise<WritableFileHandle>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { force: true }): Promise<void>;
  /** flush the directory entry after the rename; may be a no-op where directories cannot be synced */
  syncDirectory(path: string): Promise<void>;
}

/** A fresh temporary name next to `path`: `path + '.tmp-' + 12 random hex digits`. */
export function temporaryPathFor(path: string): string {
  const random = new Uint8Array(6);
  globalThis.crypto.getRandomValues(random);
  return `${path}.tmp-${Array.from(random, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** The directory part of a path ('.' when there is none), for both separators. */
export function directoryOf(path: string): string {
  const cut = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  if (cut < 0) return '.';
  return cut === 0 ? path.slice(0, 1) : path.slice(0, cut);
}

/**
 * Writes `bytes` to a temporary file beside `path`, flushes it to disk, then renames it over
 * `path`. A crash or error at any point leaves either the previous file or the complete new one,
 * never a partial file at `path`; on error the temporary file is removed.
 */
export async function writeFileAtomicWith(fs: AtomicWriteFs, path: string, bytes: Uint8Array): Promise<void> {
  if (typeof path !== 'string' || path.length === 0) {
    throw new TypeError(`writeFileAtomic: path must be a non-empty string, got ${JSON.stringify(path)}`);
  }
  if (typedArrayName(bytes) !== 'Uint8Array') throw new TypeError('writeFileAtomic: bytes must be a Uint8Array');
  const temporary = temporaryPathFor(path);
  const handle = await fs.open(temporary, 'wx');
  try {
    try {
      let written = 0;
      while (written < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, written, bytes.length - written, written);
        if (bytesWritten <= 0) throw new Error(`writeFileAtomic: the write to ${temporary} made no progress at byte ${written}`);
        written += bytesWritten;
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, path);
  } catch (error) {
    await fs.rm(temporary, { force: true }).catch(() => undefined);
    throw error;
  }
  await fs.syncDirectory(directoryOf(path));
}

/** The node:fs/promises calls the adapter below uses (structural, so this module imports no Node code). */
export interface NodeFsPromises {
  open(path: string, flags: string): Promise<WritableFileHandle>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { force: true }): Promise<void>;
}

/** node:fs/promises behind the AtomicWriteFs interface. */
export function atomicWriteFsFromNode(fs: NodeFsPromises): AtomicWriteFs {
  return {
    open: (path, flags) => fs.open(path, flags),
    rename: (from, to) => fs.rename(from, to),
    rm: (path, options) => fs.rm(path, options),
    async syncDirectory(path) {
      // Makes the rename itself durable on POSIX; Windows cannot open directories, and the rename
      // has already happened, so failing here would only hide a successful write.
      let directory: WritableFileHandle | undefined;
      try {
        directory = await fs.open(path, 'r');
        await directory.sync();
      } catch {
        return;
      } finally {
        await directory?.close();
      }
    },
  };
}

/**
 * writeFileAtomic for code that must also bundle for browsers and edge runtimes: node:fs/promises is
 * imported (through the host module) only when this is called.
 */
export async function writeFileAtomicInNode(path: string, bytes: Uint8Array): Promise<void> {
  let fs: NodeFsPromises;
  try {
    fs = await fileSystem();
  } catch (err) {
    throw new Error(`writing ${path} needs Node's file system (${(err as Error).message})`, { cause: err });
  }
  await writeFileAtomicWith(atomicWriteFsFromNode(fs), path, bytes);
}

/** The statfs fields a free-space check reads (a subset of node:fs's StatsFs). */
export interface FreeSpace {
  /** blocks free to an unprivileged user */
  bavail: number | bigint;
  /** bytes per block */
  bsize: number | bigint;
}

/** A file that the folder it goes to has no room for: refused before any work, naming the option or flag. */
export class NoSpaceError extends Error {
  override name = 'NoSpaceError';
  readonly code = 'ENOSPC';
  constructor(
    message: string,
    /** bytes free in the folder */
    readonly availableBytes: number,
    /** bytes the file takes (at most) */
    readonly requiredBytes: number,
  ) {
    super(message);
  }
}

/**
 * Refuse, before any work, a file of up to `bytes` bytes that the folder of `path` has no room for
 * (the new file is written beside the old one before the rename, so all of it must fit). `field`
 * names the option or flag, `what` the file. A file system that cannot say passes: the write itself
 * will tell, and a failed write keeps the model in memory.
 */
export async function checkFreeSpaceWith(
  statfs: (path: string) => Promise<FreeSpace>,
  field: string,
  path: string,
  bytes: number,
  what: string,
): Promise<void> {
  const folder = directoryOf(path);
  const info = await statfs(folder).catch(() => null);
  if (info === null) return;
  const free = Number(info.bavail) * Number(info.bsize);
  if (free < bytes) {
    throw new NoSpaceError(
      `${field} ${path}: the folder ${folder} has ${free} bytes (${formatBytes(free)}) free, but ${what} takes up to ${bytes} bytes (${formatBytes(bytes)})`,
      free,
      bytes,
    );
  }
}

/** checkFreeSpaceWith over node:fs's statfs (Node >= 18.15), imported only when this is called */
export async function checkFreeSpaceInNode(field: string, path: string, bytes: number, what: string): Promise<void> {
  const fs = await fileSystem();
  if (typeof fs.statfs !== 'function') return;
  await checkFreeSpaceWith((folder) => fs.statfs(folder), field, path, bytes, what);
}
