/** What the model, trainer, generation and serialization need of any tokenizer. */
export interface Tokenizer {
  readonly kind: 'bpe' | 'char';
  readonly vocabSize: number;
  /** id of the end-of-text token where the tokenizer has one */
  readonly eosTokenId: number | undefined;
  /** special tokens are recognised only when allowed ('all' or a list); otherwise encoded as text */
  encode(text: string, options?: { allowedSpecial?: 'all' | readonly string[] }): number[];
  /** throws a RangeError naming the id for ids outside [0, vocabSize) */
  decode(ids: ArrayLike<number>): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** a decoder fed one id at a time that emits text only once the bytes form whole characters */
  createStreamDecoder(): StreamDecoder;
  /** plain JSON (with `kind`) that `tokenizerFromJSON` turns back into an equal tokenizer */
  toJSON(): TokenizerJSON;
}

export interface StreamDecoder {
  /** text completed by this id ('' while a character is still incomplete) */
  push(id: number): string;
  /** whatever is left (incomplete bytes become U+FFFD) */
  flush(): string;
}

export interface TokenizerJSON {
  kind: 'bpe' | 'char';
  [key: string]: unknown;
}
