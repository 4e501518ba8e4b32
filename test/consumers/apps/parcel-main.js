// Parcel's page entry: the scenario, and GPT-2's tokenizer from the subpath tinygpt/gpt2. Parcel
// reads no package.json `exports` unless the app opts in (this one does not), so the subpath must
// resolve without it (the package's gpt2/package.json). The result carries the ids it gives and
// whether its tokenizer is the main entry's BPETokenizer (one library instance: both from the
// browser build).
import { BPETokenizer } from 'tinygpt';
import { gpt2Tokenizer } from 'tinygpt/gpt2';
import { run } from './scenario.js';

const GPT2_TEXT = 'Hello, world! tinygpt/gpt2 resolved in a Parcel app without exports.';

Promise.all([run(), gpt2Tokenizer()]).then(
  ([result, tokenizer]) =>
    (globalThis.consumerResult = {
      ...result,
      gpt2: { text: GPT2_TEXT, ids: tokenizer.encode(GPT2_TEXT), sameInstance: tokenizer instanceof BPETokenizer },
    }),
  (err) => (globalThis.consumerResult = { error: String(err?.stack ?? err) }),
);
