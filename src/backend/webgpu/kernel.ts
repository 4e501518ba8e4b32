/**
 * A kernel is WGSL written against named tensors; the bindings are generated per call site.
 *
 * Why generate them: tensors are views into shared buffers (flat parameters, flat gradients), and
 * WebGPU rejects a dispatch that binds one buffer twice when either binding is writable. So every
 * distinct buffer gets exactly one binding, the tensors that live in it share that binding, and each
 * tensor's element offset travels in the uniform `P` (field `o_<name>`), together with the kernel's
 * scalars. In the body, `$name` stands for the array that holds tensor `name`.
 */
/// <reference types="@webgpu/types" />
import type { DType } from '../contract.js';

export type ScalarType = 'u32' | 'i32' | 'f32';

export interface KernelDef {
  readonly name: string;
  /** tensors in binding order; `write` marks the ones the kernel stores into */
  readonly tensors: readonly { readonly name: string; readonly write?: boolean }[];
  readonly scalars: readonly { readonly name: string; readonly type: ScalarType }[];
  /** WGSL after the generated declarations; must define `@compute fn main` */
  readonly body: string;
}

/** Bytes of one uniform slot; 256 is the largest minUniformBufferOffsetAlignment WebGPU allows. */
export const UNIFORM_SLOT_BYTES = 256;

/** How the tensors of one call map onto bindings: binding index (from 1) and dtype per tensor. */
export interface BindingPlan {
  /** for each tensor of the def, the index of its binding among the distinct buffers (0-based) */
  readonly slotOfTensor: readonly number[];
  /** per distinct buffer: element type and whether any tensor in it is written */
  readonly slots: readonly { readonly dtype: DType; readonly write: boolean }[];
}

export function planKey(def: KernelDef, plan: BindingPlan, variant: string): string {
  const slots = plan.slots.map((s) => `${s.dtype}${s.write ? 'w' : 'r'}`).join(',');
  return `${def.name}|${variant}|${plan.slotOfTensor.join(',')}|${slots}`;
}

export function generateWgsl(def: KernelDef, plan: BindingPlan): string {
  const fields = [...def.tensors.map((t) => `o_${t.name}: u32`), ...def.scalars.map((s) => `${s.name}: ${s.type}`)];
  if (fields.length * 4 > UNIFORM_SLOT_BYTES) throw new Error(`kernel ${def.name}: too many uniform fields`);
  const decls = plan.slots.map((slot, i) => {
    const access = slot.write ? 'read_write' : 'read';
    return `@group(0) @binding(${i + 1}) var<storage, ${access}> buf${i}: array<${slot.dtype}>;`;
  });
  const names = new Map(def.tensors.map((t, i) => [t.name, `buf${plan.slotOfTensor[i]}`]));
  const resolved = def.body.replace(/\$(\w+)/g, (_, name: string) => {
    const binding = names.get(name);
    if (binding === undefined) throw new Error(`kernel ${def.name}: body names unknown tensor $${name}`);
    return binding;
  });
  return [`struct Params { ${fields.join(', ')} }`, `@group(0) @binding(0) var<uniform> P: Params;`, ...decls, resolved].join('\n');
}

/** The workgroup grid for `count` workgroups, folded into y when x would exceed the per-dimension limit. */
export function grid(count: number, maxPerDim: number): [number, number] {
  if (count <= maxPerDim) return [Math.max(count, 1), 1];
  const y = Math.ceil(count / maxPerDim);
  if (y > maxPerDim) throw new RangeError(`dispatch of ${count} workgroups exceeds ${maxPerDim}^2`);
  return [Math.ceil(count / y), y];
}

/** WGSL: the linear workgroup index of a grid made by `grid` (pass wid and num_workgroups). */
export const LINEAR_GROUP = `fn linearGroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }`;

/** WGSL: a NaN made at run time (a NaN constant is a shader-creation error) */
export const QUIET_NAN = `fn quietNan() -> f32 { var bits = 0x7fc00000u; return bitcast<f32>(bits); }`;
