// Hugging Face tokenizer.json (plus tokenizer_config.json beside it, if present), loaded from local files only
// through @huggingface/tokenizers (the tokenizer of transformers.js); evomerge never fetches from a hub.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { EvomergeError } from '../../errors.ts';
import type { Tokenizer } from './tokenizer.ts';

export class HfTokenizer implements Tokenizer {
  private constructor(
    readonly name: string,
    private readonly impl: HfTokenizerImpl,
  ) {}

  /** Loads `file` (a tokenizer.json); `tokenizer_config.json` in the same folder is read when it exists. */
  static load(file: string): HfTokenizer {
    const json = readJson(file);
    const configFile = join(dirname(file), 'tokenizer_config.json');
    const config = existsSync(configFile) ? readJson(configFile) : {};
    let impl: HfTokenizerImpl;
    try {
      impl = new HfTokenizerImpl(json, config);
    } catch (err) {
      throw new EvomergeError('eval.bad_tokenizer', `cannot build the tokenizer: ${(err as Error).message}`, { file });
    }
    return new HfTokenizer(file, impl);
  }

  /** Token ids of `text` with no special tokens added (the eval tasks score raw text). */
  encode(text: string): number[] {
    return this.impl.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[]): string {
    return this.impl.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}

function readJson(file: string): object {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new EvomergeError('eval.bad_tokenizer', 'tokenizer file not found', { file });
  }
  try {
    return JSON.parse(text) as object;
  } catch (err) {
    throw new EvomergeError('eval.bad_tokenizer', `not valid JSON: ${(err as Error).message}`, { file });
  }
}
