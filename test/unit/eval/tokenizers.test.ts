// Tokenizers: the byte tokenizer (token = UTF-8 byte, Python-style replacement on decode) and a Hugging Face
// tokenizer.json that the test writes itself (byte-level BPE, GPT-2 style), loaded from local files only.
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ByteTokenizer } from '../../../src/eval/tokenizers/byte.ts';
import { HfTokenizer } from '../../../src/eval/tokenizers/hf.ts';
import { pythonStrip } from '../../../src/eval/tasks/generate.ts';
import { byteLevelTokenizerJson } from '../../fixtures/tiny-decoders.ts';

const tmp = mkdtempSync(join(tmpdir(), 'evomerge-tok-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('byte tokenizer', () => {
  const tok = new ByteTokenizer();
  it('encodes UTF-8 bytes and decodes them back', () => {
    expect(tok.encode('7+5=')).toEqual([55, 43, 53, 61]);
    expect(tok.encode('é\n')).toEqual([0xc3, 0xa9, 10]);
    expect(tok.decode([0xc3, 0xa9, 10])).toBe('é\n');
  });
  it("replaces invalid UTF-8 like Python's errors='replace'", () => {
    // bytes([0x31, 0xc3, 0x32]).decode('utf-8', errors='replace') == '1\ufffd2'; b'\xff\xfe'.decode(...) == '\ufffd\ufffd'
    expect(tok.decode([0x31, 0xc3, 0x32])).toBe('1\ufffd2');
    expect(tok.decode([0xff, 0xfe])).toBe('\ufffd\ufffd');
    // a truncated 3-byte sequence is one replacement character (maximal subpart)
    expect(tok.decode([0xe2, 0x82])).toBe('\ufffd');
  });
  it('strips whitespace as Python str.strip() does', () => {
    expect(pythonStrip(' \t12\n ')).toBe('12');
    expect(pythonStrip('\x1c12\x85')).toBe('12'); // Python strips these, JS trim() does not
    expect(pythonStrip('\ufeff12')).toBe('\ufeff12'); // JS trim() strips U+FEFF, Python does not
  });
});

describe('Hugging Face tokenizer.json', () => {
  const file = join(tmp, 'tokenizer.json');
  const vocab: Record<string, number> = {
    h: 0,
    e: 1,
    l: 2,
    o: 3,
    Ġ: 4,
    w: 5,
    r: 6,
    d: 7,
    he: 8,
    ll: 9,
    hell: 10,
    hello: 11,
    Ġw: 12,
    '<unk>': 13,
  };
  writeFileSync(
    file,
    JSON.stringify({
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [
        {
          id: 13,
          content: '<unk>',
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
          special: true,
        },
      ],
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: '<unk>',
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges: ['h e', 'l l', 'he ll', 'hell o', 'Ġ w'],
      },
    }),
  );

  it('encodes with the BPE merges and decodes back, adding no special tokens', () => {
    const tok = HfTokenizer.load(file);
    expect(tok.encode('hello world')).toEqual([11, 12, 3, 6, 2, 7]);
    expect(tok.encode('hell')).toEqual([10]);
    expect(tok.decode([11, 12, 3, 6, 2, 7])).toBe('hello world');
    expect(tok.name).toBe(file);
  });

  it('names the file when it is missing or not JSON', () => {
    expect(() => HfTokenizer.load(join(tmp, 'absent.json'))).toThrow(/absent\.json: tokenizer file not found/);
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, '{ not json');
    expect(() => HfTokenizer.load(bad)).toThrow(/bad\.json: not valid JSON/);
  });
});

describe('a Hugging Face tokenizer.json in an eval suite', () => {
  // GPT-2's byte-level BPE with no merges and the 256 byte symbols as vocabulary, each with its byte value as
  // id: the same ids as the zoo's byte tokenizer, but through @huggingface/tokenizers and the suite's
  // `tokenizer:` key. Scores must then equal the byte tokenizer's.
  it('scores the zoo exactly as the byte tokenizer does', async () => {
    const { Evaluator } = await import('../../../src/eval/evaluator.ts');
    const { openModelDir } = await import('../../../src/checkpoint/model-dir.ts');
    const ROOT = join(import.meta.dirname, '../../..');
    const tokFile = join(tmp, 'bytes-tokenizer.json');
    writeFileSync(tokFile, byteLevelTokenizerJson());
    const hf = HfTokenizer.load(tokFile);
    expect(hf.encode('what is 9 plus 8? é')).toEqual(new ByteTokenizer().encode('what is 9 plus 8? é'));
    const micro = readFileSync(join(ROOT, 'evals/micro.yaml'), 'utf8');
    const suite = join(tmp, 'micro-hf.yaml');
    writeFileSync(
      suite,
      micro
        .replaceAll('../models/', `${join(ROOT, 'models')}/`)
        .replace(/(fit|test): micro\//g, `$1: ${join(ROOT, 'evals/micro')}/`)
        .replace('tokenizer: byte', `tokenizer: ${tokFile}`),
    );
    const model = openModelDir(join(ROOT, 'models/micro/expert-math'));
    const opts = { split: 'test' as const, tasks: ['math_words', 'english'], limit: 40, withPredictions: true };
    const byHf = await Evaluator.create({ suite });
    const byByte = await Evaluator.create({ suite: join(ROOT, 'evals/micro.yaml') });
    try {
      const a = await byHf.evaluate(model.tensors, opts);
      const b = await byByte.evaluate(model.tensors, opts);
      expect(a[0]!.predictions).toEqual(b[0]!.predictions);
      expect(a[0]!.value).toBeGreaterThan(0.5);
      expect(a[1]!.value).toBe(b[1]!.value);
      expect(a[1]!.extra.bits_per_byte!.value).toBe(b[1]!.extra.bits_per_byte!.value);
    } finally {
      await byHf.close();
      await byByte.close();
      model.close();
    }
  });
});
