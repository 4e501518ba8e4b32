/**
 * Which parameters a training run updates: train()'s `trainable` and `freeze` options name them by
 * exact name, a `*` pattern ('h.*.attn.*') or a group ('embeddings', 'attention', 'mlp',
 * 'layernorm', 'layer:N'), and resolve here, once, into the list of trained entries the plan holds.
 */
import type { ParamEntry } from '../model/types.js';
import { describe } from '../util/describe.js';

/** the named groups `trainable` and `freeze` accept besides names and patterns */
export const PARAMETER_GROUPS: Readonly<Record<string, (name: string) => boolean>> = {
  /** the token and position embeddings (the token embedding is also the tied LM head) */
  embeddings: (name) => name === 'wte.weight' || name === 'wpe.weight',
  attention: (name) => name.includes('.attn.'),
  mlp: (name) => name.includes('.mlp.'),
  /** every LayerNorm gain and bias, ln_f included */
  layernorm: (name) => /(^|\.)ln_(1|2|f)\./.test(name),
  biases: (name) => name.endsWith('.bias'),
};

function matcher(field: string, selector: unknown, index: number): (name: string) => boolean {
  if (typeof selector !== 'string' || selector === '') {
    throw new TypeError(`${field}[${index}] must be a parameter name, a '*' pattern or a group name, got ${describe(selector)}`);
  }
  const group = PARAMETER_GROUPS[selector];
  if (group) return group;
  const layer = /^layer:(\d+)$/.exec(selector);
  if (layer) return (name) => name.startsWith(`h.${layer[1]}.`);
  if (selector.includes('*')) {
    const source = selector
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    const pattern = new RegExp(`^${source}$`);
    return (name) => pattern.test(name);
  }
  return (name) => name === selector;
}

/** the entries `selectors` name; each selector must name at least one of `entries` */
function selected(field: string, selectors: unknown, entries: readonly ParamEntry[]): Set<string> {
  if (!Array.isArray(selectors) || selectors.length === 0) {
    throw new TypeError(
      `${field} must be a non-empty array of parameter names, '*' patterns (e.g. 'h.*.attn.*') or groups ` +
        `(${Object.keys(PARAMETER_GROUPS).join(', ')}, layer:N)`,
    );
  }
  const names = new Set<string>();
  selectors.forEach((selector, i) => {
    const matches = matcher(field, selector, i);
    const hits = entries.filter((e) => matches(e.name));
    if (hits.length === 0) {
      throw new RangeError(
        `${field}[${i}] = ${JSON.stringify(selector)} names no parameter of this model (names look like ${entries
          .slice(0, 3)
          .map((e) => e.name)
          .join(', ')}, ...)`,
      );
    }
    for (const e of hits) names.add(e.name);
  });
  return names;
}

/**
 * The entries a run trains: all of them, only those `trainable` names, or all but those `freeze`
 * names (give at most one of the two). At least one entry must stay trainable.
 */
export function resolveTrainable(
  options: { trainable?: unknown; freeze?: unknown },
  entries: readonly ParamEntry[],
): readonly ParamEntry[] {
  if (options.trainable !== undefined && options.freeze !== undefined) {
    throw new RangeError('train: give at most one of trainable (what trains) or freeze (what does not)');
  }
  if (options.trainable !== undefined) {
    const names = selected('trainable', options.trainable, entries);
    return entries.filter((e) => names.has(e.name));
  }
  if (options.freeze !== undefined) {
    const names = selected('freeze', options.freeze, entries);
    const kept = entries.filter((e) => !names.has(e.name));
    if (kept.length === 0) throw new RangeError('freeze names every parameter of the model: nothing would train');
    return kept;
  }
  return entries;
}
