/**
 * AdamW on the model's backend over one parameter group (the model's trained entries, or a LoRA
 * adapter's): moments m and v only for the group's entries, packed into two flat buffers, one
 * `adamwUpdate` per entry so weight decay applies only where `entry.decay` is true (weight matrices
 * and embeddings, not biases or LayerNorm). Frozen parameters get no moments and are never written.
 */
import { allOrNothing } from '../backend/all-or-nothing.js';
import type { Backend, Tensor } from '../backend/contract.js';
import { packedOffsets } from '../model/params.js';
import type { ParamEntry, ParameterGroup } from '../model/types.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

interface EntryViews {
  entry: ParamEntry;
  /** element offset of its moments in m and v */
  start: number;
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
  private readonly views: EntryViews[];
  /** 1-element f32: the squared global gradient norm */
  private readonly normOut: Tensor;

  constructor(
    private readonly backend: Backend,
    private readonly group: ParameterGroup,
    readonly options: AdamWOptions,
  ) {
    // each moment tensor starts on a 16-element boundary, as parameters do
    const { offsets: starts, length } = packedOffsets(group.entries);
    // cut only between entries where the backend needs several buffers
    [this.m, this.v, this.normOut] = allOrNothing(backend, (allocator) => [
      allocator.alloc(length, 'f32', starts),
      allocator.alloc(length, 'f32', starts),
      allocator.alloc(1, 'f32'),
    ]);
    this.views = group.entries.map((entry, i) => ({
      entry,
      start: starts[i],
      param: backend.view(group.params, entry.offset, entry.length),
      grad: backend.view(group.grads, group.gradOffsets?.[i] ?? entry.offset, entry.length),
      m: backend.view(this.m, starts[i], entry.length),
      v: backend.view(this.v, starts[i], entry.length),
    }));
  }

  /** bytes of the moments `entries` need: what a run adds on top of the model */
  static momentBytes(entries: readonly ParamEntry[]): number {
    return 2 * packedOffsets(entries).length * 4;
  }

  /**
   * The global L2 norm of the group's gradient buffer (one 1-element download); whatever else the
   * buffer holds (alignment gaps, entries outside the group) must be zero.
   */
  async gradNorm(): Promise<number> {
    this.backend.squaredNorm(this.normOut, this.group.grads);
    const squared = (await this.backend.download(this.normOut))[0];
    return Math.sqrt(squared);
  }

  /** Scale the gradients so their global norm becomes maxGradNorm when `norm` exceeds it. */
  clip(norm: number, maxGradNorm: number): void {
    if (norm > maxGradNorm) this.backend.scale(this.group.grads, maxGradNorm / norm);
  }

  /** One AdamW update of every entry of the group with its gradients. */
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

  /** Host copies of the moments, by parameter name (the group's entries only). */
  async getMoments(): Promise<{ m: Record<string, Float32Array>; v: Record<string, Float32Array> }> {
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    if (this.views.length === 0) return { m, v };
    const mAll = (await this.backend.download(this.m)) as Float32Array;
    const vAll = (await this.backend.download(this.v)) as Float32Array;
    for (const { entry, start } of this.views) {
      m[entry.name] = mAll.slice(start, start + entry.length);
      v[entry.name] = vAll.slice(start, start + entry.length);
    }
    return { m, v };
  }

  /**
   * Restore moments saved by getMoments: every entry of the group must be present with its length,
   * and no other (a checkpoint of a run that trained other parameters does not fit this one).
   */
  setMoments(m: Record<string, Float32Array>, v: Record<string, Float32Array>): void {
    const known = new Set(this.views.map((views) => views.entry.name));
    for (const [label, record] of [
      ['m', m],
      ['v', v],
    ] as const) {
      const extra = Object.keys(record).find((name) => !known.has(name));
      if (extra !== undefined) {
        throw new RangeError(
          `optimizer state: optimizer.${label}.${extra} belongs to a parameter this run does not train; ` +
            'resume with the trainable / freeze options of the run that saved the checkpoint',
        );
      }
    }
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
