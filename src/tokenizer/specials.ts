/** Finding allowed special tokens in text. */
import { describe } from '../util/describe.js';

/** GPT-2's end-of-text token: a tokenizer's eosTokenId is this token's id when it has one. */
export const END_OF_TEXT = '<|endoftext|>';

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Special tokens' text in total: past this, the alternation regex below would be too large for
 * some engines (V8 refuses near 10 MB, with the whole pattern in its message), and no real
 * tokenizer comes close (GPT-4's has a few hundred bytes of specials).
 */
export const MAX_SPECIAL_TOKENS_CHARS = 65536;

/** A regex matching any of the texts, longest first so that no token shadows a longer one. */
export function alternation(texts: readonly string[], flags: string): RegExp {
  let total = 0;
  for (const text of texts) total += text.length;
  if (total > MAX_SPECIAL_TOKENS_CHARS) {
    throw new RangeError(
      `specialTokens: ${texts.length} special token(s) of ${total} characters in total; at most ${MAX_SPECIAL_TOKENS_CHARS} characters are supported`,
    );
  }
  const sorted = [...texts].sort((x, y) => y.length - x.length);
  return new RegExp(sorted.map(escapeRegExp).join('|'), flags);
}

/**
 * The global regex for the allowed special tokens (null when none is allowed), checked against
 * the tokenizer's special tokens and cached per allowed set.
 */
export function specialMatcher(
  specialIds: ReadonlyMap<string, number>,
  allowed: 'all' | readonly string[],
  cache: Map<string, RegExp>,
): RegExp | null {
  let names: readonly string[];
  if (allowed === 'all') {
    names = [...specialIds.keys()];
  } else if (Array.isArray(allowed)) {
    names = allowed;
    for (const name of names) {
      if (!specialIds.has(name)) {
        throw new Error(
          `allowedSpecial: ${describe(name)} is not a special token of this tokenizer (it has ${JSON.stringify([...specialIds.keys()])})`,
        );
      }
    }
  } else {
    throw new TypeError(`allowedSpecial: expected 'all' or an array of special tokens, got ${describe(allowed)}`);
  }
  if (names.length === 0) return null;
  const key = allowed === 'all' ? '' : names.join('\u0000');
  let matcher = cache.get(key);
  if (!matcher) {
    matcher = alternation(names, 'g');
    cache.set(key, matcher);
  }
  return matcher;
}
