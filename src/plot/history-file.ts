/**
 * A training history from what a user has on disk: a tinygpt training checkpoint (safetensors with
 * the trainer state), or JSON holding the history array itself or an object with a `history`
 * field (a TrainResult written with JSON.stringify, where non-finite losses became null).
 */
import type { HistoryEntry } from '../train/checkpoint.js';
import { decodeCheckpoint } from '../train/checkpoint.js';

/** The history inside `bytes`; `name` (a file name) is what errors call it. */
export function historyFromBytes(bytes: Uint8Array, name: string): HistoryEntry[] {
  const text = new TextDecoder().decode(bytes.subarray(0, 64)).trimStart();
  if (text.startsWith('[') || text.startsWith('{')) return historyFromJSON(new TextDecoder().decode(bytes), name);
  let history: HistoryEntry[];
  try {
    history = decodeCheckpoint(bytes).state.history;
  } catch (err) {
    throw new Error(
      `${name}: neither JSON nor a tinygpt training checkpoint (${(err as Error).message.replace(/^resumeFrom: /, '')}); ` +
        'a model file holds no history: give the --checkpoint file of the run, or its history as JSON',
      { cause: err },
    );
  }
  return checked(history, name);
}

function historyFromJSON(text: string, name: string): HistoryEntry[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${name}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const history = Array.isArray(value) ? value : (value as { history?: unknown } | null)?.history;
  if (!Array.isArray(history))
    throw new Error(`${name}: expected a history array, or an object with a "history" array (as train() returns)`);
  return checked(history as HistoryEntry[], name);
}

function checked(history: HistoryEntry[], name: string): HistoryEntry[] {
  if (history.length === 0) throw new Error(`${name}: the history is empty (no step was logged)`);
  history.forEach((h, i) => {
    if (h === null || typeof h !== 'object' || !Number.isFinite(h.step)) {
      throw new Error(`${name}: history[${i}] has no finite "step"; got ${JSON.stringify(h)?.slice(0, 80)}`);
    }
  });
  return history;
}
