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

/** every option name an entry point takes, written as a record of its options type so that a name added there must be added here */
export type OptionNames<T> = Readonly<Record<keyof Required<T>, true>>;

/**
 * `options`, given to `caller`, must be undefined or an object holding only the names in `known`: a
 * misspelt option is an error naming it and the known ones, not a default used in silence.
 */
export function checkOptionNames<T>(options: T | undefined, known: OptionNames<T>, caller: string): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${caller}: options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!Object.hasOwn(known, key)) {
      throw new RangeError(`${caller}: unknown option "${key}"; known options: ${Object.keys(known).join(', ')}`);
    }
  }
}
