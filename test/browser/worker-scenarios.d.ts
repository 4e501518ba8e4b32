// Types for worker-scenarios.js (plain JS so that the browser can load it unchanged).
import type * as TinyGPTWorker from '../../src/worker.js';
import type { SDK } from './scenarios.js';

/** the main entry and tinygpt/worker together, as the scenarios use them */
export type WorkerSDK = SDK & typeof TinyGPTWorker;

export interface CaughtError {
  isExpectedClass: boolean;
  isError: boolean;
  name: string;
  message: string;
  step: number | undefined;
}

export interface WorkerMatchesInThreadResult {
  backendName: string;
  threads: number;
  notices: string[];
  stopped: string;
  hereLosses: number[];
  workerLosses: number[];
  sameBytes: boolean;
  hereIds: number[];
  workerIds: number[];
  workerText: string | undefined;
  streamedIds: number[];
  streamedText: string;
  lastFinishReason: string | undefined;
  hereBeams: number[];
  workerBeams: number[];
  loadedIds: number[];
  transferredLength: number;
  loadedTokenizerVocab: number | undefined;
  tokenizerVocab: number;
}

export interface WorkerErrorsResult {
  config: CaughtError;
  file: CaughtError;
  nonFinite: CaughtError;
  range: CaughtError;
  afterErrors: number;
}

export interface WorkerAbortsResult {
  trainStopped: string;
  trainSteps: number;
  stepsSeen: number;
  streamedCount: number;
  streamErrorIsReason: boolean;
  generateErrorIsReason: boolean;
  takenBeforeBreak: number;
  afterIds: number;
}

export interface WorkerDisposeResult {
  running: boolean;
  longFailure: string | null;
  later: string | null;
}

export interface AdapterRun {
  ids: number[];
  beams: number[];
}

export interface WorkerAdaptersResult {
  /** by adapter name ('null': none attached) */
  hereRuns: Record<string, AdapterRun>;
  workerRuns: Record<string, AdapterRun & { streamed: number[] }>;
  loadedInfo: { name: string; rank: number; alpha: number; targets: string[]; numParameters: number };
  transferredLength: number;
  listedBefore: { adapters: { name: string }[]; active: string | null };
  listedAfter: { adapters: { name: string }[]; active: string | null };
  unknown: CaughtError | null;
  repeated: CaughtError | null;
  afterRemoveIds: number[];
}

export declare function workerAdapters(sdk: WorkerSDK): Promise<WorkerAdaptersResult>;
export declare function workerMatchesInThread(sdk: WorkerSDK, wasmThreads: number): Promise<WorkerMatchesInThreadResult>;
export declare function workerErrors(sdk: WorkerSDK): Promise<WorkerErrorsResult>;
export declare function workerAborts(sdk: WorkerSDK): Promise<WorkerAbortsResult>;
export declare function workerDispose(sdk: WorkerSDK): Promise<WorkerDisposeResult>;
export declare function workerWebGPU(sdk: WorkerSDK): Promise<{ backendName: string; hereIds: number[]; workerIds: number[] }>;
