/**
 * AdamW on the model's backend: moments m and v in two flat buffers with the same layout as
 * `model.params`, one `adamwUpdate` per parameter entry so weight decay applies only where
 * `entry.decay` is true (weight matrices and embeddings, not biases or LayerNorm).
 */
import { allOrNothing } from '../backend/all-or-nothing.js';
import type { Backend, Tensor } from '../backend/contract.js';
import type { GPTModel, ParamEntry } from '../model/types.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

interface EntryViews {
  entry: ParamEntry;
  param: Tensor;
  grad: Tensor;
  m: Tensor;
  v: Tensor;
}

export class AdamW {
  readonly m: Tensor;
  readonly v: Tensor;
  /** updates applied so far: the step number of bias correction */
  updates = 0;
  private readonly backend: Backend;
  private readonly views: EntryViews[];
  /** 1-element f32: the squared global gradient norm */
  private readonly normOut: Tensor;

  constructor(
    private readonly model: GPTModel,
    readonly options: AdamWOptions,
  ) {
    const backend = model.backend;
    this.backend = backend;
    const length = model.params.length;
    // laid out like the parameters: cut only between them where the backend needs several buffers
    const parameterStarts = model.paramLayout.map((entry) => entry.offset);
    [this.m, this.v, this.normOut] = allOrNothing(backend, (allocator) => [
      allocator.alloc(length, 'f32', parameterStarts),
      allocator.alloc(length, 'f32', parameterStarts),
      allocator.alloc(1, 'f32'),
    ]);
    this.views = model.paramLayout.map((entry) => ({
      entry,
      param: backend.view(model.params, entry.offset, entry.length),
      grad: backend.view(model.grads, entry.offset, entry.length),
      m: backend.view(this.m, entry.offset, entry.length),
      v: backend.view(this.v, entry.offset, entry.length),
    }));
  }

  /** The global L2 norm of model.grads (one 1-element download). */
  async gradNorm(): Promise<number> {
    this.backend.squaredNorm(this.normOut, this.model.grads);
    const squared = (await this.backend.download(this.normOut))[0];
    return Math.sqrt(squared);
  }

  /** Scale the gradients so their global norm becomes maxGradNorm when `norm` exceeds it. */
  clip(norm: number, maxGradNorm: number): void {
    if (norm > maxGradNorm) this.backend.scale(this.model.grads, maxGradNorm / norm);
  }

  /** One AdamW update of every parameter with the gradients in model.grads. */
  update(learningRate: number): void {
    this.updates++;
    const { beta1, beta2, eps, weightDecay } = this.options;
    for (const { entry, param, grad, m, v } of this.views) {
      this.backend.adamwUpdate(param, grad, m, v, {
        learningRate,
        beta1,
        beta2,
        eps,
        weightDecay: entry.decay ? weightDecay : 0,
        step: this.updates,
      });
    }
  }

  /** Host copies of the moments, by parameter name. */
  async getMoments(): Promise<{ m: Record<string, Float32Array>; v: Record<string, Float32Array> }> {
    const mAll = (await this.backend.download(this.m)) as Float32Array;
    const vAll = (await this.backend.download(this.v)) as Float32Array;
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const { entry } of this.views) {
      m[entry.name] = mAll.slice(entry.offset, entry.offset + entry.length);
      v[entry.name] = vAll.slice(entry.offset, entry.offset + entry.length);
    }
    return { m, v };
  }

  /** Restore moments saved by getMoments; every parameter must be present with its length. */
  setMoments(m: Record<string, Float32Array>, v: Record<string, Float32Array>): void {
    const uploads: [Tensor, Float32Array][] = [];
    for (const views of this.views) {
      const { name, length } = views.entry;
      for (const [label, record, target] of [
        ['m', m, views.m],
        ['v', v, views.v],
      ] as const) {
        const data = record[name];
        if (!(data instanceof Float32Array)) throw new RangeError(`optimizer state: optimizer.${label}.${name} is missing`);
        if (data.length !== length) {
          throw new RangeError(`optimizer state: optimizer.${label}.${name} has ${data.length} elements; the model needs ${length}`);
        }
        uploads.push([target, data]);
      }
    }
    for (const [target, data] of uploads) this.backend.upload(target, data);
  }

  dispose(): void {
    this.backend.free(this.m);
    this.backend.free(this.v);
    this.backend.free(this.normOut);
  }
}
