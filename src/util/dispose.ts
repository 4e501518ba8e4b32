/**
 * `Symbol.dispose` (for `using model = await createModel(...)`), or where the runtime does not have
 * it yet (Node 20 before 20.4, older browsers) the registered symbol TypeScript's `using` helper
 * looks up in its place.
 */
export const DISPOSE: typeof Symbol.dispose = (Symbol.dispose ?? Symbol.for('Symbol.dispose')) as typeof Symbol.dispose;

/** `Symbol.asyncDispose` (for `await using worker = await createModelWorker(...)`), with the same fallback */
export const ASYNC_DISPOSE: typeof Symbol.asyncDispose = (Symbol.asyncDispose ??
  Symbol.for('Symbol.asyncDispose')) as typeof Symbol.asyncDispose;

/** A call on a model after its dispose(): the message names the call. */
export class DisposedError extends Error {
  override name = 'DisposedError';
}

/** refuse `caller` on a model whose dispose() ran (models say so through isDisposed) */
export function checkNotDisposed(model: unknown, caller: string): void {
  if ((model as { isDisposed?: unknown } | null)?.isDisposed === true) throw new DisposedError(`${caller}: this model was disposed`);
}
