/**
 * Compute pipelines, compiled once per (kernel, variant, binding plan), and bind groups, cached per
 * (pipeline, buffers): a training step reuses both from the second step on.
 */
/// <reference types="@webgpu/types" />
import { UNIFORM_SLOT_BYTES, generateWgsl, planKey, type BindingPlan, type KernelDef } from './kernel.js';

const SHADER_STAGE_COMPUTE = 0x4;
const MAX_CACHED_BIND_GROUPS = 4096;

export interface BindingWindow {
  /** the pooled buffer's id, for the cache key */
  readonly id: number;
  readonly buffer: GPUBuffer;
  readonly offset: number;
  readonly size: number;
}

export interface CompiledKernel {
  readonly key: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

export class PipelineCache {
  private readonly pipelines = new Map<string, CompiledKernel>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();

  constructor(
    private readonly device: GPUDevice,
    /** receives the error scope around each pipeline's creation, to report with the next download */
    private readonly track: (scope: Promise<GPUError | null>, what: string) => void,
  ) {}

  get(def: KernelDef, plan: BindingPlan, variant: string): CompiledKernel {
    const key = planKey(def, plan, variant);
    const cached = this.pipelines.get(key);
    if (cached) return cached;
    const layout = this.device.createBindGroupLayout({
      label: key,
      entries: [
        {
          binding: 0,
          visibility: SHADER_STAGE_COMPUTE,
          buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: UNIFORM_SLOT_BYTES },
        },
        ...plan.slots.map((slot, i) => ({
          binding: i + 1,
          visibility: SHADER_STAGE_COMPUTE,
          buffer: { type: slot.write ? ('storage' as const) : ('read-only-storage' as const) },
        })),
      ],
    });
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ label: key, code: generateWgsl(def, plan) });
    const pipeline = this.device.createComputePipeline({
      label: key,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    this.track(this.device.popErrorScope(), `kernel ${key} failed to compile`);
    const compiled = { key, pipeline, layout };
    this.pipelines.set(key, compiled);
    return compiled;
  }

  /** `windows`: per binding, the byte range of its buffer that the dispatch may touch */
  bindGroup(kernel: CompiledKernel, uniforms: GPUBuffer, uniformId: number, windows: readonly BindingWindow[]): GPUBindGroup {
    const key = `${kernel.key}#${uniformId}:${windows.map((w) => `${w.id}@${w.offset}+${w.size}`).join(',')}`;
    const cached = this.bindGroups.get(key);
    if (cached) return cached;
    if (this.bindGroups.size >= MAX_CACHED_BIND_GROUPS) this.bindGroups.clear();
    const group = this.device.createBindGroup({
      layout: kernel.layout,
      entries: [
        { binding: 0, resource: { buffer: uniforms, size: UNIFORM_SLOT_BYTES } },
        ...windows.map((w, i) => ({ binding: i + 1, resource: { buffer: w.buffer, offset: w.offset, size: w.size } })),
      ],
    });
    this.bindGroups.set(key, group);
    return group;
  }

  /** forget bind groups that name a buffer about to be destroyed */
  clearBindGroups(): void {
    this.bindGroups.clear();
  }
}
