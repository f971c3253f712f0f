// The built-in byte tokenizer: token id = UTF-8 byte value (vocab 256, no special tokens), as the zoo's
// byte_tokenizer.json specifies.
import type { Tokenizer } from './tokenizer.ts';

const encoder = new TextEncoder();
// fatal: false → each invalid sequence becomes U+FFFD, matching Python bytes.decode('utf-8', errors='replace')
// (both follow the WHATWG/Unicode "maximal subpart" substitution rule).
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export class ByteTokenizer implements Tokenizer {
  readonly name = 'byte';
  encode(text: string): number[] {
    return Array.from(encoder.encode(text));
  }
  decode(ids: readonly number[]): string {
    return decoder.decode(Uint8Array.from(ids));
  }
}
