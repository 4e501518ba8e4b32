/**
 * How an error message shows a value it refuses, the same in every module: strings quoted (cut to
 * 40 characters), numbers, booleans, null and undefined as themselves, arrays and plain objects by
 * kind, typed arrays and other instances by class.
 */

const SHOWN_STRING_LENGTH = 40;

/** `value` for an error message; `undefinedAs` says what an undefined value means where it is read (e.g. 'missing') */
export function describe(value: unknown, undefinedAs = 'undefined'): string {
  if (value === undefined) return undefinedAs;
  if (value === null) return 'null';
  if (typeof value === 'string') {
    return JSON.stringify(value.length > SHOWN_STRING_LENGTH ? value.slice(0, SHOWN_STRING_LENGTH) + '...' : value);
  }
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') {
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name;
    if (name === undefined || name === '' || name === 'Object') return 'an object';
    return `${/^[AEIO]/.test(name) ? 'an' : 'a'} ${name}`;
  }
  return String(value as number | boolean | bigint | symbol);
}

/** throws RangeError `${name} must be ${allowed}, got ${describe(value)}` */
export function fail(name: string, allowed: string, value: unknown): never {
  throw new RangeError(`${name} must be ${allowed}, got ${describe(value)}`);
}
