// Pico checkpoints for merge tests: a 2-layer Llama-shaped model written as a real safetensors folder (or
// held in memory), with values from a seeded generator and per-test overrides.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { CheckpointWriter } from '../../../src/checkpoint/model-dir.ts';
import { MemoryTensors, numel, type DType, type Tensor } from '../../../src/checkpoint/tensor-source.ts';

export const PICO_CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 8,
  hidden_size: 4,
  intermediate_size: 6,
  num_hidden_layers: 2,
  torch_dtype: 'float32',
};

/** Names and shapes of the pico model, in checkpoint (alphabetical) order as safetensors writers store them. */
export function picoShapes(layers = 2): [string, number[]][] {
  const out: [string, number[]][] = [
    ['lm_head.weight', [8, 4]],
    ['model.embed_tokens.weight', [8, 4]],
    ['model.norm.weight', [4]],
  ];
  for (let i = 0; i < layers; i++) {
    out.push(
      [`model.layers.${i}.input_layernorm.weight`, [4]],
      [`model.layers.${i}.mlp.up_proj.weight`, [6, 4]],
      [`model.layers.${i}.self_attn.q_proj.weight`, [4, 4]],
    );
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/** Deterministic values in [-1, 1) (a 32-bit LCG; tests only). */
function values(n: number, seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

export interface PicoOptions {
  seed: number;
  layers?: number;
  /** Replace or add tensors (a shape without data gets generated values). */
  override?: Record<string, { shape: number[]; data?: Float32Array }>;
  /** Leave these tensors out. */
  drop?: string[];
  dtype?: DType;
}

export function picoTensors(opts: PicoOptions): Map<string, Tensor> {
  const shapes = new Map(picoShapes(opts.layers));
  for (const [name, o] of Object.entries(opts.override ?? {})) shapes.set(name, o.shape);
  for (const d of opts.drop ?? []) shapes.delete(d);
  const out = new Map<string, Tensor>();
  let k = 0;
  for (const name of [...shapes.keys()].sort()) {
    const shape = shapes.get(name)!;
    const data = opts.override?.[name]?.data ?? values(numel(shape), opts.seed * 1000 + k++);
    out.set(name, { shape, data });
  }
  return out;
}

/** Writes a pico model folder (config.json + model.safetensors) and returns its path. */
export function writePico(dir: string, opts: PicoOptions): string {
  mkdirSync(path.dirname(dir), { recursive: true });
  const tensors = picoTensors(opts);
  const w = new CheckpointWriter({
    outDir: dir,
    dtype: opts.dtype ?? 'F32',
    shardSizeBytes: 1e9,
    plan: [...tensors].map(([name, t]) => ({ name, shape: t.shape })),
    config: { ...PICO_CONFIG, num_hidden_layers: opts.layers ?? 2 },
  });
  for (const [name, t] of tensors) w.writeTensor(name, t);
  w.finish();
  return dir;
}

/** The same model held in memory, as the planner takes it. */
export function picoMemory(
  dir: string,
  opts: PicoOptions,
): { dir: string; config: Record<string, unknown>; tensors: MemoryTensors } {
  const m = new MemoryTensors(dir);
  for (const [name, t] of picoTensors(opts)) m.writeTensor(name, t);
  return { dir, config: { ...PICO_CONFIG, num_hidden_layers: opts.layers ?? 2 }, tensors: m };
}
