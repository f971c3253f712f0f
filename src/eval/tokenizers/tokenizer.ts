// The tokenizer contract the eval tasks use: text ↔ token ids, nothing else (no BOS/EOS added by evomerge).

export interface Tokenizer {
  /** `byte`, or the tokenizer.json path, for messages. */
  readonly name: string;
  encode(text: string): number[];
  /** Token ids → text; invalid UTF-8 becomes U+FFFD (Python's errors='replace'). */
  decode(ids: readonly number[]): string;
}
