// Types for scenarios.js (plain JS so that the browser can load it unchanged).
import type * as TinyGPT from '../../src/index.js';

export type SDK = typeof TinyGPT;
type BackendChoice = TinyGPT.BackendChoice;
type BackendName = TinyGPT.BackendName;

export declare const TINY_CONFIG: Readonly<{
  vocabSize: number;
  maxSeqLen: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  seed: number;
}>;
export declare const TRAIN_OPTIONS: Readonly<{
  steps: number;
  batchSize: number;
  seqLen: number;
  learningRate: number;
  warmupSteps: number;
  seed: number;
}>;
export declare const SAMPLE_OPTIONS: Readonly<TinyGPT.GenerateOptions & { numReturnSequences?: 1 }>;

export declare function namesText(): string;
export declare function encodeNames(): Int32Array;
export declare function fixedBatch(batchSize: number, seqLen: number): { inputs: Int32Array; targets: Int32Array };
export declare function toBase64(bytes: ArrayBufferView): string;

export interface TrainSampleSaveResult {
  backendName: BackendName;
  losses: number[];
  steps: number;
  ids: number[];
  modelBase64: string;
}
export declare function trainSampleSave(sdk: SDK, backend: BackendChoice): Promise<TrainSampleSaveResult>;

export interface LossAndGradientsResult {
  backendName: BackendName;
  loss: number;
  /** base64 of float32 values, by GPT-2 parameter name */
  gradients: Record<string, string>;
}
export declare function lossAndGradients(sdk: SDK, backend: BackendChoice): Promise<LossAndGradientsResult>;

export declare function autoBackend(sdk: SDK): Promise<{ backendName: BackendName; notices: string[] }>;

export declare function trainStoppedByTimer(
  sdk: SDK,
  backend: BackendChoice,
  totalSteps: number,
  stopAfterMs: number,
): Promise<{ stopped: 'completed' | 'aborted'; steps: number; totalSteps: number }>;

export interface BrowserFilesResult {
  opfsAvailable: boolean;
  fromUrl: { ids: number[]; text: string | undefined };
  fromOpfs: { ids: number[]; text: string | undefined };
  blobType: string;
  blobBase64: string;
  missingError: string | null;
}
export declare function browserFiles(
  sdk: SDK,
  modelUrl: string,
  missingUrl: string,
  prompt: string,
  sampleOptions: TinyGPT.GenerateOptions & { numReturnSequences?: 1 },
): Promise<BrowserFilesResult>;
