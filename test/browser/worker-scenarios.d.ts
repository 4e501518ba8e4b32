// Types for worker-scenarios.js (plain JS so that the browser can load it unchanged).
import type { SDK } from './scenarios.js';

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

export declare function workerAdapters(sdk: SDK): Promise<WorkerAdaptersResult>;
export declare function workerMatchesInThread(sdk: SDK, wasmThreads: number): Promise<WorkerMatchesInThreadResult>;
export declare function workerErrors(sdk: SDK): Promise<WorkerErrorsResult>;
export declare function workerAborts(sdk: SDK): Promise<WorkerAbortsResult>;
export declare function workerDispose(sdk: SDK): Promise<WorkerDisposeResult>;
export declare function workerWebGPU(sdk: SDK): Promise<{ backendName: string; hereIds: number[]; workerIds: number[] }>;
