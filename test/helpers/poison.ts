import type { GPTModel } from '../../src/model/types.js';

/**
 * Write one parameter element straight into the model's parameter buffer, bypassing setParameters
 * (which refuses non-finite values): how tests make a step diverge on purpose.
 */
export async function poisonParameter(model: GPTModel, name: string, index: number, value: number): Promise<void> {
  const entry = model.paramLayout.find((e) => e.name === name);
  if (!entry) throw new Error(`no parameter ${name}`);
  const flat = Float32Array.from((await model.backend.download(model.params)) as Float32Array);
  flat[entry.offset + index] = value;
  model.backend.upload(model.params, flat);
}
