/**
 * Long loops on CPU backends (training steps, decoding) finish each op synchronously, so awaits
 * alone never let the event loop run: no timer, message, Stop button or abort could land until the
 * loop ends. `turn()` gives the event loop one macrotask when TURN_EVERY_MS have passed since the
 * last, so pages stay responsive and a worker hears an abort between steps or tokens.
 */

/** longest stretch a loop runs without giving the event loop a turn */
const TURN_EVERY_MS = 30;

export class EventLoopTurns {
  private last = Date.now();

  async turn(): Promise<void> {
    if (Date.now() - this.last <= TURN_EVERY_MS) return;
    await nextMacrotask();
    this.last = Date.now();
  }
}

/**
 * One macrotask: setImmediate in Node; elsewhere a MessageChannel message, which browsers do not
 * clamp the way they clamp nested setTimeout(0) to 4 ms (a lost 4 ms in every 30).
 */
function nextMacrotask(): Promise<void> {
  const scope = globalThis as { setImmediate?: (callback: () => void) => unknown };
  if (typeof scope.setImmediate === 'function') return new Promise((resolve) => scope.setImmediate!(resolve));
  if (typeof MessageChannel === 'function') {
    return new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        channel.port1.close();
        resolve();
      };
      channel.port2.postMessage(null);
    });
  }
  return new Promise((resolve) => setTimeout(resolve, 0));
}
