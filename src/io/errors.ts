/**
 * Anything wrong with a model file's bytes or contents: malformed safetensors, a config that does
 * not validate, missing, extra or wrong-shaped tensors, an unreadable tokenizer. Catch this one
 * class to tell a bad file from other failures.
 */
export class ModelFileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelFileError';
  }
}
