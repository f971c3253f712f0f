// graph: auto through the evaluator: a suite that names only a base model folder (config.json + safetensors +
// tokenizer.json) scores it, with the same results whether the weights are built into a session per candidate
// or fed per run; and every bad input is one line naming the file and the key, with nothing written.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Evaluator } from '../../../src/eval/evaluator.ts';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { byteLevelTokenizerJson, writeTinyDecoder } from '../../fixtures/tiny-decoders.ts';

let tmp: string;
let base: string;
let suite: string;

function writeSuite(file: string, baseDir = base): string {
  writeFileSync(
    file,
    `base_model: ${baseDir}\ntasks:\n  gen:\n    kind: generate\n    fit: data/gen.jsonl\n    test: data/gen.jsonl\n  ` +
      `  max_new_tokens: 6\n    stop: "\\n"\n  text:\n    kind: loglik\n    fit: data/text.jsonl\n    test: ` +
      `data/text.jsonl\n`,
  );
  return file;
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'evomerge-auto-'));
  base = writeTinyDecoder(join(tmp, 'base'), 'qwen2', { seed: 9, config: { vocab_size: 256 } });
  writeFileSync(join(base, 'tokenizer.json'), byteLevelTokenizerJson());
  mkdirSync(join(tmp, 'data'));
  writeFileSync(
    join(tmp, 'data/gen.jsonl'),
    ['2+2=', 'abc', 'hello ', 'x'].map((p) => JSON.stringify({ prompt: p, answer: '4' })).join('\n') + '\n',
  );
  writeFileSync(
    join(tmp, 'data/text.jsonl'),
    ['the cat sat on the mat', 'a b c d e f g', 'zzz'].map((t) => JSON.stringify({ text: t })).join('\n') + '\n',
  );
  suite = writeSuite(join(tmp, 'suite.yaml'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('graph: auto in the evaluator', () => {
  it('scores a model folder named only by base_model, identically with weights built in or fed per run', async () => {
    const results = [];
    for (const weightMode of ['external', 'inputs'] as const) {
      const ev = await Evaluator.create({ suite, threads: 1, weightMode });
      const model = openModelDir(base);
      try {
        results.push(await ev.evaluate(model.tensors, { withPredictions: true }));
      } finally {
        model.close();
        await ev.close();
      }
    }
    const [built, fed] = results;
    expect(built!.map((s) => [s.task, s.n])).toEqual([
      ['gen', 4],
      ['text', 3],
    ]);
    expect(fed![0]!.predictions).toEqual(built![0]!.predictions);
    expect(built![0]!.predictions!.every((p) => typeof p === 'string')).toBe(true);
    expect(Number.isFinite(built![1]!.value)).toBe(true);
    expect(Math.abs(fed![1]!.value - built![1]!.value)).toBeLessThanOrEqual(1e-5);
  });

  it('on webgpu (lavapipe here; standard ops, weights uploaded once per candidate) scores as on the cpu', async () => {
    const results = [];
    for (const ep of ['cpu', 'webgpu'] as const) {
      const ev = await Evaluator.create({ suite, threads: 1, ep });
      const model = openModelDir(base);
      try {
        results.push(await ev.evaluate(model.tensors, { withPredictions: true }));
      } finally {
        model.close();
        await ev.close();
      }
    }
    const [cpu, gpu] = results;
    expect(gpu![0]!.predictions).toEqual(cpu![0]!.predictions);
    expect(Math.abs(gpu![1]!.value - cpu![1]!.value)).toBeLessThanOrEqual(1e-3);
  });

  it('refuses a limit that is not a positive integer (limit: -5 scored nothing before), naming the suite', async () => {
    const ev = await Evaluator.create({ suite, threads: 1 });
    const model = openModelDir(base);
    try {
      for (const limit of [-5, 0, 1.5]) {
        const e = await ev.evaluate(model.tensors, { limit }).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(e, String(limit)).toBeInstanceOf(EvomergeError);
        expect((e as Error).message).toBe(`${suite}: limit: expected a positive integer, got ${limit}`);
      }
    } finally {
      model.close();
      await ev.close();
    }
  });

  it('runs a layer path: dropping layers changes the scores', async () => {
    const full = await Evaluator.create({ suite, threads: 1 });
    const short = await Evaluator.create({ suite, threads: 1, layerPath: [0, 0] });
    const model = openModelDir(base);
    try {
      const a = await full.evaluate(model.tensors, { tasks: ['text'] });
      const b = await short.evaluate(model.tensors, { tasks: ['text'] });
      expect(b[0]!.value).not.toBe(a[0]!.value);
    } finally {
      model.close();
      await full.close();
      await short.close();
    }
  });
});

describe('graph: auto refuses bad input in one line', () => {
  async function refusal(dir: string): Promise<EvomergeError> {
    const before = readdirSync(dir).sort();
    try {
      const ev = await Evaluator.create({ suite, baseModelDir: dir, threads: 1 });
      await ev.close();
    } catch (e) {
      expect(e).toBeInstanceOf(EvomergeError);
      expect((e as Error).message.split('\n')).toHaveLength(1);
      expect(readdirSync(dir).sort()).toEqual(before); // nothing written
      return e as EvomergeError;
    }
    throw new Error('expected a refusal');
  }
  function variant(name: string, edit: (config: Record<string, unknown>) => void): string {
    const dir = join(tmp, name);
    writeTinyDecoder(dir, 'llama', { seed: 2 });
    writeFileSync(join(dir, 'tokenizer.json'), byteLevelTokenizerJson());
    const cfgFile = join(dir, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    edit(cfg);
    writeFileSync(cfgFile, JSON.stringify(cfg));
    return dir;
  }

  it('an unsupported family', async () => {
    const dir = variant('gpt2', (c) => (c.architectures = ['GPT2LMHeadModel']));
    const e = await refusal(dir);
    expect(e.message).toBe(
      `${join(dir, 'config.json')}: architectures: GPT2LMHeadModel is not supported; evomerge builds graphs for ` +
        `LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM, Gemma2ForCausalLM, ` +
        `Gemma3ForCausalLM (or give the suite a graph: exported with optimum)`,
    );
  });

  it('an unsupported rope type', async () => {
    const dir = variant('yarn', (c) => (c.rope_scaling = { rope_type: 'yarn', factor: 4 }));
    expect((await refusal(dir)).message).toBe(
      `${join(dir, 'config.json')}: rope_scaling.rope_type: "yarn" is not supported (default, linear, llama3)`,
    );
  });

  it('tensor shapes that disagree with config.json', async () => {
    const dir = variant('wrong-shape', (c) => (c.intermediate_size = 128));
    const e = await refusal(dir);
    expect(e.code).toBe('graph.shape_mismatch');
    expect(e.message).toBe(
      `${join(dir, 'model.safetensors')}: tensor "model.layers.0.mlp.gate_proj.weight": shape [96, 64] but ` +
        `${join(dir, 'config.json')} implies [128, 64]`,
    );
  });

  it('num_hidden_layers smaller than the checkpoint (a truncated model, scored silently before)', async () => {
    const dir = variant('fewer-layers', (c) => (c.num_hidden_layers = 2));
    const e = await refusal(dir);
    expect(e.code).toBe('graph.layer_count');
    expect(e.message).toBe(
      `${join(dir, 'config.json')}: num_hidden_layers: 2 but ${join(dir, 'model.safetensors')} holds 3 layers ` +
        `(model.layers.0..2): layer 2 would be left out, scoring a truncated model`,
    );
  });

  it('huge sizes are refused against the checkpoint before anything is built', async () => {
    const cases: [string, (c: Record<string, unknown>) => void, RegExp][] = [
      [
        'layers-1e6',
        (c) => (c.num_hidden_layers = 1e6),
        /config\.json: num_hidden_layers: 1000000 but .* holds only 3 layers/,
      ],
      [
        'hidden-1e9',
        (c) => (c.hidden_size = 1e9),
        /model\.safetensors: tensor "model\.embed_tokens\.weight": shape \[97, 64\] but .*config\.json implies \[97, 1000000000\]$/,
      ],
      [
        'vocab-1e9',
        (c) => (c.vocab_size = 1e9),
        /tensor "model\.embed_tokens\.weight": shape \[97, 64\] but .*config\.json implies \[1000000000, 64\]$/,
      ],
      [
        'head-dim-1e8',
        (c) => (c.head_dim = 1e8),
        /tensor "model\.layers\.0\.self_attn\.q_proj\.weight": shape \[64, 64\] but .*config\.json implies \[400000000, 64\]$/,
      ],
    ];
    for (const [name, edit, message] of cases) {
      const started = Date.now();
      expect((await refusal(variant(name, edit))).message, name).toMatch(message);
      expect(Date.now() - started, name).toBeLessThan(5000);
    }
  });

  it('a layer tensor the config does not read (biases the config leaves out) is refused', async () => {
    const dir = variant('no-bias-key', (c) => (c.attention_bias = false));
    const e = await refusal(dir);
    expect(e.code).toBe('graph.unused_tensor');
    expect(e.message).toBe(
      `${join(dir, 'model.safetensors')}: tensor "model.layers.0.self_attn.q_proj.bias": the checkpoint holds this ` +
        `tensor, which LlamaForCausalLM with ${join(dir, 'config.json')} does not read (attention_bias?): the graph ` +
        `would score another model than this checkpoint`,
    );
  });

  it('a missing tokenizer.json', async () => {
    const dir = variant('no-tokenizer', () => {});
    rmSync(join(dir, 'tokenizer.json'));
    const e = await refusal(dir);
    expect(e.code).toBe('eval.no_tokenizer');
    expect(e.message).toMatch(new RegExp(`^${join(dir, 'tokenizer.json')}: tokenizer: missing: `));
  });

  it('an int8-quantized checkpoint (quantization_config)', async () => {
    const dir = variant('int8', (c) => (c.quantization_config = { quant_method: 'bitsandbytes', load_in_8bit: true }));
    expect((await refusal(dir)).message).toMatch(
      new RegExp(`^${join(dir, 'config.json')}: quantization_config: quantized checkpoints`),
    );
  });

  it('through the CLI: `evomerge eval` scores the folder, and an unsupported family is one line on stderr, exit 1', () => {
    const cli = join(import.meta.dirname, '../../../bin/evomerge.js');
    const ok = spawnSync(process.execPath, [cli, 'eval', base, '--suite', suite, '--threads', '1', '--json'], {
      encoding: 'utf8',
    });
    expect(ok.status, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as { scores: { task: string }[] }).scores.map((s) => s.task)).toEqual([
      'gen',
      'text',
    ]);
    const dir = variant('gpt2-cli', (c) => (c.architectures = ['GPT2LMHeadModel']));
    const bad = spawnSync(
      process.execPath,
      [cli, 'eval', dir, '--suite', writeSuite(join(tmp, 'suite-cli.yaml'), dir)],
      { encoding: 'utf8' },
    );
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.trim().split('\n')).toEqual([
      `evomerge: ${join(dir, 'config.json')}: architectures: GPT2LMHeadModel is not supported; evomerge builds graphs ` +
        `for LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM, Gemma2ForCausalLM, ` +
        `Gemma3ForCausalLM (or give the suite a graph: exported with optimum)`,
    ]);
  });

  it('an fp8 tensor in the safetensors file', async () => {
    const dir = variant('fp8', (c) => (c.torch_dtype = 'float8_e4m3fn'));
    // Replace the weights with one F8_E4M3 tensor: the header is checked before anything else is read.
    const header = Buffer.from(
      JSON.stringify({ 'model.embed_tokens.weight': { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }).padEnd(
        72,
        ' ',
      ),
    );
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([len, header, Buffer.from([1, 2])]));
    const e = await refusal(dir);
    expect(e.message).toMatch(
      new RegExp(
        `^${join(dir, 'model.safetensors')}: tensor "model.embed_tokens.weight": dtype F8_E4M3 is not supported`,
      ),
    );
  });
});
