/**
 * The browser build's stand-in for node.ts (swapped in by tsup.config.ts): same functions, no
 * Node imports. Nothing calls them in a browser (callers check isNode first); if something did,
 * it would learn why it cannot work here.
 */
import type * as NodeHost from './node.js';

function unavailable(what: string): never {
  throw new Error(`${what} needs Node; this is tinygpt's browser build (Node resolves the package's 'import'/'require' build)`);
}

export const isNode: typeof NodeHost.isNode = () => false;
export const readFileBytes: typeof NodeHost.readFileBytes = () => unavailable('reading a file by path');
export const fileSystem: typeof NodeHost.fileSystem = () => unavailable("Node's file system");
export const syncFileSystem: typeof NodeHost.syncFileSystem = () => unavailable("Node's file system");
export const hardwareThreads: typeof NodeHost.hardwareThreads = () => unavailable('os.availableParallelism');
export const startWorkerThread: typeof NodeHost.startWorkerThread = () => unavailable('worker_threads');
export const workerParentPort: typeof NodeHost.workerParentPort = () => unavailable('worker_threads');
export const importOptional: typeof NodeHost.importOptional = (specifier) => unavailable(`the package '${specifier}'`);
