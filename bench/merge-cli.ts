// The whole `evomerge merge` process on 1 base + 3 experts of one R×C tensor each (synthetic safetensors, --dtype,
// in a temp folder, page-cached after the first run): wall seconds per entry point, alternated A B A B in one run;
// with --profile, where one run's CPU time went (a V8 CPU profile per entry point, self time by phase); and the
// non-finite guard alone on one tensor, the plain loop against the SIMD scan; with bf16 or f16, the decode of one
// stored tensor to float32 likewise (dtype.ts's loop against simd-decode.ts).
// `npm run bench -- merge-cli [--rows 4096] [--cols 14336] [--reps 5] [--method task_arithmetic]
//  [--dtype f32|bf16|f16] [--bins bin/evomerge.js,OTHER/bin/evomerge.js] [--device cpu] [--profile] [--keep DIR]`

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeHalvesLoop, encodeFromF32 } from '../src/checkpoint/dtype.ts';
import { CheckpointWriter } from '../src/checkpoint/model-dir.ts';
import { decodeHalvesSimd } from '../src/checkpoint/simd-decode.ts';
import type { DType } from '../src/checkpoint/tensor-source.ts';
import { firstNonFinite, firstNonFiniteLoop } from '../src/kernel/non-finite.ts';

const ROOT = join(import.meta.dirname, '..');
const EXPERTS = 3;
const WEIGHTS = [0.5, 0.3, 0.2];
const TENSOR = 'model.layers.0.mlp.up_proj.weight';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Deterministic uniform values in [−scale, scale) (xorshift32), added to `offset` when given. */
function fill(out: Float32Array, seed: number, scale: number, offset?: Float32Array): void {
  let s = seed >>> 0 || 1;
  const k = (2 * scale) / 4294967296;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (offset === undefined ? 0 : offset[i]) + ((s >>> 0) * k - scale);
  }
}

function writeModels(dir: string, shape: number[], dtype: DType): Float32Array {
  const n = shape[0] * shape[1];
  const plan = [{ name: TENSOR, shape }];
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: shape[1],
    intermediate_size: shape[0],
    num_hidden_layers: 1,
    num_attention_heads: Math.max(1, shape[1] / 128),
    num_key_value_heads: Math.max(1, shape[1] / 512),
    vocab_size: 256,
    torch_dtype: 'float32',
  };
  const base = new Float32Array(n);
  fill(base, 1, 0.02);
  const x = new Float32Array(n);
  ['base', ...Array.from({ length: EXPERTS }, (_, m) => `expert${m}`)].forEach((name, m) => {
    const w = new CheckpointWriter({ outDir: join(dir, name), dtype, shardSizeBytes: 5e9, plan, config });
    if (m > 0) fill(x, 100 + m, 0.004, base);
    w.writeTensor(TENSOR, { shape, data: m === 0 ? base : x });
    w.finish();
  });
  return base;
}

function recipe(method: string, dtype: DType): string {
  const loadDtype = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' }[dtype as 'F32' | 'BF16' | 'F16'];
  const density = method === 'task_arithmetic' ? '' : ', density: 0.5';
  const models = WEIGHTS.map((w, m) => `  - {model: expert${m}, parameters: {weight: ${w}${density}}}\n`).join('');
  return `merge_method: ${method}\nbase_model: base\ndtype: ${loadDtype}\nrandom_seed: 7\nmodels:\n${models}`;
}

/** Runs one entry point; wall seconds of the process and the merge's own seconds (its "in X s" line). */
async function runMerge(bin: string, args: string[], nodeArgs: string[]): Promise<{ wallS: number; mergeS: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((res) => child.on('close', res));
  const wallS = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${bin} exited with ${code}:\n${out}`);
  const m = / in ([0-9.]+) s/.exec(out);
  return { wallS, mergeS: m ? Number(m[1]) : NaN };
}

/** Self time (ms) of a V8 CPU profile by phase, from the functions' names and files. */
function phases(profileFile: string): Record<string, number> {
  const p = JSON.parse(readFileSync(profileFile, 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string } }[];
    samples: number[];
    timeDeltas: number[];
  };
  const dt = new Map<number, number>();
  p.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const out: Record<string, number> = {};
  for (const node of p.nodes) {
    const { functionName: f, url } = node.callFrame;
    const phase =
      f === '(idle)'
        ? 'idle'
        : /firstNonFinite/.test(f)
          ? 'non-finite guard'
          : /\/kernel\/cpu\//.test(url)
            ? 'kernel'
            : /decodeToF32|decodeHalves|encodeFromF32|roundToDType/.test(f) ||
                (/^wasm:/.test(url) && /^\$?b?f16$/.test(f))
              ? 'dtype conversion'
              : f === 'read' || /readTensorInto|readInto/.test(f)
                ? 'read'
                : f === 'writeBuffer' || f === 'writeSync'
                  ? 'write'
                  : /fsync/.test(f)
                    ? 'fsync'
                    : f === '(garbage collector)'
                      ? 'gc'
                      : 'other (start-up, modules, plan)';
    out[phase] = (out[phase] ?? 0) + (dt.get(node.id) ?? 0) / 1000;
  }
  return out;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string', default: '4096' },
      cols: { type: 'string', default: '14336' },
      reps: { type: 'string', default: '5' },
      method: { type: 'string', default: 'task_arithmetic' },
      dtype: { type: 'string', default: 'f32' },
      bins: { type: 'string', default: 'bin/evomerge.js' },
      device: { type: 'string', default: 'cpu' },
      profile: { type: 'boolean', default: false },
      keep: { type: 'string' },
    },
  });
  const shape = [Number(values.rows), Number(values.cols)];
  const dtype = ({ f32: 'F32', bf16: 'BF16', f16: 'F16' } as const)[values.dtype as 'f32' | 'bf16' | 'f16'];
  if (dtype === undefined) throw new Error(`--dtype: expected f32, bf16 or f16, got ${values.dtype}`);
  const reps = Number(values.reps);
  const bins = values.bins.split(',').map((b) => resolve(ROOT, b));
  const dir = values.keep ?? mkdtempSync(join(tmpdir(), 'evomerge-bench-merge-cli-'));
  mkdirSync(dir, { recursive: true });
  const load0 = loadavg();
  try {
    console.log(`writing 1 base + ${EXPERTS} experts of ${shape.join('×')} ${dtype} into ${dir}`);
    const base = writeModels(dir, shape, dtype);
    writeFileSync(join(dir, 'recipe.yaml'), recipe(values.method, dtype));
    const args = (o: string) => ['merge', join(dir, 'recipe.yaml'), '-o', join(dir, o), '--force'];
    const deviceArgs = ['--device', values.device];

    // The guard alone on one tensor (in this process): the loop it replaced, then the SIMD scan.
    const guard: Record<string, number[]> = { loop: [], simd: [] };
    for (let r = 0; r < reps; r++) {
      for (const [name, f] of [
        ['loop', firstNonFiniteLoop],
        ['simd', firstNonFinite],
      ] as const) {
        const t0 = performance.now();
        if (f(base) !== -1) throw new Error('finite data reported non-finite');
        guard[name].push((performance.now() - t0) / 1000);
      }
    }

    // The decode alone on one stored tensor (bf16/f16), alternated: the plain loop, then the SIMD decode.
    const decode: Record<string, number[]> = { loop: [], simd: [] };
    if (dtype !== 'F32') {
      const stored = encodeFromF32(dtype, base);
      const out = new Float32Array(base.length);
      for (let r = 0; r < reps; r++) {
        for (const name of ['loop', 'simd'] as const) {
          const t0 = performance.now();
          if (name === 'loop') decodeHalvesLoop(dtype, stored, out);
          else if (!decodeHalvesSimd(dtype, stored, out)) throw new Error('no WebAssembly SIMD');
          decode[name].push((performance.now() - t0) / 1000);
        }
      }
    }

    // One untimed run per entry point (page cache, tsx's compile cache), then A B A B …
    for (const [b, bin] of bins.entries()) await runMerge(bin, [...args(`out${b}`), ...deviceArgs], []);
    const wall = bins.map(() => [] as number[]);
    const merge = bins.map(() => [] as number[]);
    for (let r = 0; r < reps; r++) {
      for (const [b, bin] of bins.entries()) {
        const run = await runMerge(bin, [...args(`out${b}`), ...deviceArgs], []);
        wall[b].push(run.wallS);
        merge[b].push(run.mergeS);
      }
    }
    const gb = (shape[0] * shape[1] * { F32: 4, BF16: 2, F16: 2 }[dtype as 'F32'] * (EXPERTS + 2)) / 1e9;
    console.log(
      `\n${values.method}, ${EXPERTS + 1} ${dtype} inputs + 1 output = ${gb.toFixed(2)} GB on disk, ${reps} alternated reps:`,
    );
    console.log('entry point | process wall s (median) | merge s (median) | merge s (min)');
    bins.forEach((bin, b) =>
      console.log(
        `${bin} | ${median(wall[b]).toFixed(2)} | ${median(merge[b]).toFixed(2)} | ${Math.min(...merge[b]).toFixed(2)}`,
      ),
    );
    const n = base.length;
    console.log(
      `\nnon-finite guard on one tensor (${n} elements, median of ${reps}): loop ${(median(guard.loop) * 1000).toFixed(0)} ms, ` +
        `simd ${(median(guard.simd) * 1000).toFixed(0)} ms (a merge runs it on ${EXPERTS + 2} tensors of this size)`,
    );
    if (dtype !== 'F32')
      console.log(
        `${dtype} decode of one tensor (${n} elements, median of ${reps}): loop ${(median(decode.loop) * 1000).toFixed(0)} ` +
          `ms, simd ${(median(decode.simd) * 1000).toFixed(0)} ms (a merge decodes ${EXPERTS + 1} tensors of this size)`,
      );

    if (values.profile) {
      console.log('\nCPU profile of one run per entry point, self time in ms by phase:');
      for (const [b, bin] of bins.entries()) {
        const profDir = join(dir, `prof${b}`);
        rmSync(profDir, { recursive: true, force: true });
        await runMerge(bin, [...args(`out${b}`), ...deviceArgs], ['--cpu-prof', `--cpu-prof-dir=${profDir}`]);
        // The CLI's process and tsx's loader thread each write a profile: sum them.
        const sum: Record<string, number> = {};
        for (const f of readdirSync(profDir))
          for (const [k, v] of Object.entries(phases(join(profDir, f)))) sum[k] = (sum[k] ?? 0) + v;
        const parts = Object.entries(sum)
          .filter(([k]) => k !== 'idle')
          .sort((x, y) => y[1] - x[1])
          .map(([k, v]) => `${k} ${v.toFixed(0)}`);
        console.log(`${bin}: ${parts.join(', ')}`);
      }
    }
    const fmt = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
    console.log(
      `\nnode ${process.version}; ${cpus().length} cores; load average ${fmt(load0)} at the start, ${fmt(loadavg())} at the end`,
    );
  } finally {
    if (values.keep === undefined) rmSync(dir, { recursive: true, force: true });
  }
}
