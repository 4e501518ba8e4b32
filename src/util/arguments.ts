/**
 * Checks shared by the public entry points that take a model: a wrong value gets a TypeError naming
 * the call and the argument, a disposed model a DisposedError, before anything reads the value.
 */
import { describe } from './describe.js';
import { checkNotDisposed } from './dispose.js';

/** `model`, given to `caller`, must be a live model (createModel, loadModel, quantizeModel) */
export function checkModelArgument(model: unknown, caller: string): void {
  const m = model as { config?: unknown; getParameters?: unknown } | null;
  if (m === null || typeof m !== 'object' || typeof m.config !== 'object' || typeof m.getParameters !== 'function') {
    throw new TypeError(`${caller}: model must be a model from createModel, loadModel or quantizeModel; got ${describe(model)}`);
  }
  checkNotDisposed(model, caller);
}
