/** The GPU device a backend ran on is gone (driver reset, removal, or destroy): its tensors are lost with it. */
export class DeviceLostError extends Error {
  override readonly name = 'DeviceLostError';
}
