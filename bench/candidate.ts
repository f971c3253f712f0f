// `npm run bench -- candidate [--params 0.5B] [--ep cpu|webgpu] [--modes external,inputs] [--items 200]
//   [--max-new-tokens 8] [--loglik-items 50] [--candidates 2] [--threads N] [--dtype bf16|f16|f32] [--keep DIR]`
//
// One candidate at a realistic size, end to end: a synthetic Llama-shaped family (base + 2 experts, random
// weights, ~--params parameters, stored in --dtype) is written once; each candidate is merged in memory
// (task_arithmetic, then ties), handed to an evaluator whose graph evomerge built from config.json (graph: auto),
// and scored on a generate task (--items prompts, greedy, --max-new-tokens) and a loglik task. Per candidate and
// weight mode it prints: merge seconds; weights-to-session seconds (the evaluate() wall time not spent in the
// tasks: binding + writing the external-data file + ORT loading it, or ~0 when weights are fed per run) and its
// share of the candidate's eval time; prefill tokens/s (1 × 128 tokens) and batch-1 decode tokens/s (one token
// per step from a 32-token cache) on a session of that mode; the process's peak RSS; decode as a fraction of the
// memory-bandwidth bound (bytes of weights read per token ÷ the copy bandwidth measured on as many threads as
// ORT runs); the bytes each decode step hands ONNX Runtime (on a GPU provider: what crosses host→device per
// run); and the merge as a share of its copy bound (the bytes it must read, the sources as stored, and write, the
// float32 candidate, at one thread's measured copy bandwidth, divided by the merge's seconds).
import { existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { CheckpointWriter, openModelDir } from '../src/checkpoint/model-dir.ts';
import { ArrayPool, MemoryTensors, type DType } from '../src/checkpoint/tensor-source.ts';
import { Evaluator } from '../src/eval/evaluator.ts';
import { buildAutoGraph } from '../src/eval/auto-graph.ts';
import { bindWeights } from '../src/eval/bind.ts';
import {
  GraphSession,
  type ExecutionProvider,
  type FeedSet,
  type KvCache,
  type WeightMode,
} from '../src/eval/onnx-session.ts';
import { CpuKernel } from '../src/kernel/cpu/cpu-kernel.ts';
import { mergeRecipe } from '../src/merge/engine.ts';
import { parseRecipe } from '../src/recipe/parse.ts';
import { copyBandwidth } from './bandwidth.ts';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** "0.5B", "120M", "5e8" → a number of parameters. */
function parseCount(text: string): number {
  const m = /^([\d.e+]+)\s*([kMB]?)$/i.exec(text.trim());
  if (!m) throw new Error(`--params: cannot read ${text}`);
  const unit = { '': 1, k: 1e3, m: 1e6, b: 1e9 }[m[2]!.toLowerCase()]!;
  return Number(m[1]) * unit;
}

/** A Llama-shaped config (Llama-2/Qwen2.5-0.5B proportions: GQA 4:1, MLP 2.75×) with about `params` parameters. */
function syntheticConfig(params: number): Record<string, unknown> {
  const hidden = params >= 3e8 ? 1024 : params >= 5e7 ? 768 : 256;
  const heads = hidden / 64;
  const kvHeads = Math.max(1, heads / 4);
  const inter = Math.round((hidden * 2.75) / 64) * 64;
  const vocab = 32000;
  const perLayer = 2 * hidden * hidden + 2 * hidden * kvHeads * 64 + 3 * hidden * inter + 2 * hidden;
  const layers = Math.max(1, Math.round((params - 2 * vocab * hidden) / perLayer));
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: inter,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    max_position_embeddings: 4096,
    tie_word_embeddings: false,
  };
}

function tensorPlan(c: Record<string, unknown>): { name: string; shape: number[] }[] {
  const h = c.hidden_size as number;
  const kv = (c.num_key_value_heads as number) * 64;
  const inter = c.intermediate_size as number;
  const plan = [{ name: 'model.embed_tokens.weight', shape: [c.vocab_size as number, h] }];
  for (let l = 0; l < (c.num_hidden_layers as number); l++) {
    const p = `model.layers.${l}`;
    plan.push(
      { name: `${p}.input_layernorm.weight`, shape: [h] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [h, h] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kv, h] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kv, h] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [h, h] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [h] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [inter, h] },
      { name: `${p}.mlp.up_proj.weight`, shape: [inter, h] },
      { name: `${p}.mlp.down_proj.weight`, shape: [h, inter] },
    );
  }
  plan.push({ name: 'model.norm.weight', shape: [h] }, { name: 'lm_head.weight', shape: [c.vocab_size as number, h] });
  return plan;
}

/** Writes one model: norms 1, matrices uniform ±1/√fan_in (activations stay of order 1), expert = base + noise. */
function writeModel(dir: string, config: Record<string, unknown>, dtype: DType, seed: number, noise: number): void {
  let s = 0x9e3779b9 ^ 12345;
  let e = (0x85ebca6b ^ seed) >>> 0;
  const next = (state: number) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const plan = tensorPlan(config);
  const writer = new CheckpointWriter({ outDir: dir, dtype, shardSizeBytes: 2 ** 40, plan, config });
  for (const { name, shape } of plan) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (shape.length === 1) data.fill(1);
    else {
      const scale = 2 / Math.sqrt(shape[1]!);
      for (let i = 0; i < n; i++) {
        s = next(s);
        e = next(e);
        data[i] = scale * (s / 4294967296 - 0.5) * (1 + noise * (e / 4294967296 - 0.5));
      }
    }
    writer.writeTensor(name, { shape, data });
  }
  writer.finish();
}

/**
 * The same copy run on `threads` worker threads at once (a barrier starts each round together): the bandwidth
 * a decode running ORT on that many threads can draw. Bytes read + written by all threads ÷ the slowest
 * thread's time, best of 5 rounds.
 */
async function parallelCopyBandwidth(threads: number): Promise<number> {
  const n = 32 * 2 ** 20;
  const barrier = new Int32Array(new SharedArrayBuffer(4));
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { n, threads, barrier } = workerData;
    const a = new Float32Array(n).fill(1);
    const b = new Float32Array(n);
    const times = [];
    for (let r = 0; r < 5; r++) {
      Atomics.add(barrier, 0, 1);
      Atomics.notify(barrier, 0);
      for (let v; (v = Atomics.load(barrier, 0)) < (r + 1) * threads; ) Atomics.wait(barrier, 0, v, 5);
      const t0 = performance.now();
      b.set(a);
      times.push(performance.now() - t0);
    }
    parentPort.postMessage(times);`;
  const perThread = await Promise.all(
    Array.from(
      { length: threads },
      () =>
        new Promise<number[]>((done, fail) => {
          const w = new Worker(code, { eval: true, workerData: { n, threads, barrier } });
          w.once('message', (t: number[]) => void w.terminate().then(() => done(t)));
          w.once('error', fail);
        }),
    ),
  );
  let best = 0;
  for (let r = 0; r < 5; r++) {
    const slowest = Math.max(...perThread.map((t) => t[r]!));
    best = Math.max(best, (threads * 2 * n * 4) / (slowest / 1000));
  }
  return best;
}

const peakRssGB = () => process.resourceUsage().maxRSS / 2 ** 20;

async function decodeRates(
  session: GraphSession,
  feeds: FeedSet | undefined,
): Promise<{ prefill: number; decode: number }> {
  const prompt = Int32Array.from({ length: 128 }, (_, i) => 32 + ((i * 7) % 90));
  let best = Infinity;
  for (let r = 0; r < 2; r++) {
    const t0 = performance.now();
    await session.forward(prompt, 1, 128, feeds);
    best = Math.min(best, performance.now() - t0);
  }
  const prefill = 128 / (best / 1000);
  let { cache } = await session.forwardWithCache(prompt.subarray(0, 32), 1, 32, undefined, feeds);
  const steps = 16;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++)
    cache = (await session.forwardWithCache(Int32Array.of(65 + i), 1, 1, cache as KvCache, feeds)).cache;
  return { prefill, decode: steps / ((performance.now() - t0) / 1000) };
}

export async function main(args: string[]): Promise<void> {
  const params = parseCount(flag(args, '--params') ?? '0.5B');
  const ep = (flag(args, '--ep') ?? 'cpu') as ExecutionProvider;
  const modes = (flag(args, '--modes') ?? 'external,inputs').split(',') as WeightMode[];
  const items = Number(flag(args, '--items') ?? 200);
  const maxNew = Number(flag(args, '--max-new-tokens') ?? 8);
  const loglikItems = Number(flag(args, '--loglik-items') ?? 50);
  const candidates = Number(flag(args, '--candidates') ?? 2);
  const threads = Number(flag(args, '--threads') ?? 0) || undefined;
  const dtype =
    ({ bf16: 'BF16', f16: 'F16', f32: 'F32' } as const)[(flag(args, '--dtype') ?? 'bf16') as 'bf16'] ?? 'BF16';
  const keep = flag(args, '--keep');
  const tmp = keep ?? mkdtempSync(join(tmpdir(), 'evomerge-bench-candidate-'));
  mkdirSync(tmp, { recursive: true });

  try {
    const config = syntheticConfig(params);
    const plan = tensorPlan(config);
    const total = plan.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    const embed = (config.vocab_size as number) * (config.hidden_size as number);
    // A decode step reads every weight once except the embedding table (one row).
    const bytesPerToken = (total - embed) * 4;
    console.log(
      `candidate bench (load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}): ${(total / 1e9).toFixed(3)} B parameters (${config.num_hidden_layers} layers × hidden ` +
        `${config.hidden_size}, vocab ${config.vocab_size}), ` +
        `stored ${dtype}; ep ${ep}; ORT threads ${threads ?? 'default'}; generate ${items} items × ` +
        `${maxNew} new tokens, loglik ${loglikItems} items`,
    );
    const dirs = ['base', 'expert-a', 'expert-b'].map((n) => join(tmp, n));
    let t0 = performance.now();
    // --keep DIR reuses a family written there before (same --params and --dtype).
    if (!keep || !existsSync(join(dirs[2]!, 'config.json'))) {
      dirs.forEach((d, i) => writeModel(d, config, dtype, i, i === 0 ? 0 : 0.2));
      console.log(`wrote base + 2 experts in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }

    const prompts = Array.from({ length: items }, (_, i) =>
      JSON.stringify({ prompt: `Q${i}: what is ${i % 17} plus ${i % 5}? A:`, answer: String((i % 17) + (i % 5)) }),
    );
    writeFileSync(join(tmp, 'gen.jsonl'), prompts.join('\n') + '\n');
    const texts = Array.from({ length: loglikItems }, (_, i) =>
      JSON.stringify({ text: `Item ${i}. `.repeat(12).slice(0, 120) }),
    );
    writeFileSync(join(tmp, 'text.jsonl'), texts.join('\n') + '\n');
    const suite = join(tmp, 'suite.yaml');
    writeFileSync(
      suite,
      `base_model: base\ntokenizer: byte\ntasks:\n  gen: {kind: generate, fit: gen.jsonl, test: gen.jsonl, ` +
        `max_new_tokens: ${maxNew}}\n  text: {kind: loglik, fit: text.jsonl, test: text.jsonl}\n`,
    );
    // The bound is taken with as many threads as ORT runs: one thread's copy understates what two cores draw.
    const cores = threads ?? availableParallelism();
    const copyOne = copyBandwidth();
    const bandwidth = Math.max(copyOne, await parallelCopyBandwidth(cores));
    const bound = bandwidth / bytesPerToken;
    console.log(
      `copy bandwidth (${cores} threads) ${(bandwidth / 1e9).toFixed(1)} GB/s → batch-1 decode bound ${bound.toFixed(1)} tokens/s ` +
        `(${(bytesPerToken / 1e9).toFixed(2)} GB of float32 weights read per token)`,
    );
    // The merge runs on one thread: its bound is one thread's copy over the sources read and the output written.
    const storedBytes = { F32: 4, F16: 2, BF16: 2 }[dtype as 'F32' | 'F16' | 'BF16'];
    const mergeBytes = dirs.length * total * storedBytes + total * 4;
    const mergeBoundS = mergeBytes / copyOne;
    console.log(
      `merge bound: ${dirs.length} sources × ${((total * storedBytes) / 1e9).toFixed(2)} GB ` +
        `read + ${((total * 4) / 1e9).toFixed(2)} GB float32 written at one thread's copy ` +
        `${(copyOne / 1e9).toFixed(1)} GB/s = ${mergeBoundS.toFixed(2)} s`,
    );

    const recipes = [
      {
        merge_method: 'task_arithmetic',
        base_model: dirs[0],
        models: [
          { model: dirs[1], parameters: { weight: 0.6 } },
          { model: dirs[2], parameters: { weight: 0.4 } },
        ],
      },
      {
        merge_method: 'ties',
        base_model: dirs[0],
        models: [
          { model: dirs[1], parameters: { weight: 1, density: 0.5 } },
          { model: dirs[2], parameters: { weight: 1, density: 0.5 } },
        ],
      },
    ].slice(0, candidates);

    const kernel = new CpuKernel();
    // As the campaign's scorer does: a scored candidate's float32 arrays become the next merge's outputs.
    const pool = new ArrayPool();
    const header = [
      'mode',
      'candidate',
      'merge s',
      'merge of copy bound',
      'weights→session s',
      'share of eval',
      'gen s',
      'loglik s',
      'prefill tok/s',
      'decode tok/s',
      'of bound',
      'peak RSS GB',
      'bytes fed per decode step',
    ];
    const rows: string[][] = [header];
    try {
      for (const mode of modes) {
        const ev = await Evaluator.create({ suite, ep, weightMode: mode, ...(threads ? { threads } : {}) });
        // The prefill/decode sessions run the graph the evaluator chose (float16 on a GPU provider for 16-bit weights).
        const computeDtype = ev.computeDtype().dtype;
        console.log(`${mode}: ${ev.computeDtype().reason}`);
        const base = openModelDir(dirs[0]!);
        const auto = buildAutoGraph(dirs[0]!, base.config, base.tensors, { ep, computeDtype });
        base.close();
        try {
          for (const [k, doc] of recipes.entries()) {
            t0 = performance.now();
            const merged = new MemoryTensors(`candidate ${k}`, pool);
            await mergeRecipe(parseRecipe(doc, { file: '<bench>', baseDir: tmp }), merged, { kernel });
            const mergeS = (performance.now() - t0) / 1000;
            t0 = performance.now();
            const scores = await ev.evaluate(merged, { split: 'fit' });
            const evalS = (performance.now() - t0) / 1000;
            const taskS = scores.reduce((a, s) => a + s.seconds, 0);
            const w2s = evalS - taskS;

            // Prefill / decode on a session of the same mode, with this candidate's weights.
            const feeds = bindWeights(auto.binding, merged);
            const opts = { ep, ...(threads ? { intraOpThreads: threads } : {}) };
            const session =
              mode === 'inputs'
                ? await GraphSession.create(
                    auto.graph,
                    auto.binding.entries.map((e) => e.initializer),
                    opts,
                  )
                : mode === 'rebuild'
                  ? await GraphSession.createWithWeights(auto.graph, feeds, opts)
                  : await GraphSession.createWithExternalWeights(auto.graph, feeds, opts);
            const rates = await decodeRates(session, mode === 'inputs' ? feeds : undefined);
            await session.close();
            if (k === 0) {
              // The same with ORT's worker threads spin-waiting between operators (ORT's default, off in evomerge).
              const spinning =
                mode === 'inputs'
                  ? await GraphSession.create(
                      auto.graph,
                      auto.binding.entries.map((e) => e.initializer),
                      { ...opts, spinWait: true },
                    )
                  : await GraphSession.createWithExternalWeights(auto.graph, feeds, { ...opts, spinWait: true });
              const r = await decodeRates(spinning, mode === 'inputs' ? feeds : undefined);
              await spinning.close();
              console.log(
                `${mode} session with ORT's spin-waiting worker threads: prefill ${r.prefill.toFixed(0)} tok/s, ` +
                  `decode ${r.decode.toFixed(2)} tok/s (${((100 * r.decode) / bound).toFixed(0)}% of bound); without: ` +
                  `prefill ${rates.prefill.toFixed(0)}, decode ${rates.decode.toFixed(2)}`,
              );
            }
            if (mode === 'external' && k === 0) {
              // What ORT's default re-packing of weight matrices would add to each candidate's session, and its per-run effect.
              for (const prepack of [true, false]) {
                const t1 = performance.now();
                const s2 = await GraphSession.createWithExternalWeights(auto.graph, feeds, { ...opts, prepack });
                const loadS = (performance.now() - t1) / 1000;
                const r2 = await decodeRates(s2, undefined);
                await s2.close();
                console.log(
                  `external session ${prepack ? 'with' : 'without'} ORT weight re-packing: created in ` +
                    `${loadS.toFixed(2)} s, prefill ${r2.prefill.toFixed(0)} tok/s, decode ${r2.decode.toFixed(2)} ` +
                    `tok/s`,
                );
              }
            }
            merged.release(); // every session of this candidate is closed
            const kvBytes =
              2 * (config.num_hidden_layers as number) * (config.num_key_value_heads as number) * 64 * 48 * 4; // ~48 cached positions
            const fed = (mode === 'inputs' ? total * 4 : 0) + kvBytes + 16;
            rows.push([
              mode,
              `#${k} ${doc.merge_method}`,
              mergeS.toFixed(2),
              `${((100 * mergeBoundS) / mergeS).toFixed(0)}%`,
              w2s.toFixed(2),
              `${((100 * w2s) / evalS).toFixed(1)}%`,
              scores[0]!.seconds.toFixed(1),
              scores[1]!.seconds.toFixed(1),
              rates.prefill.toFixed(0),
              rates.decode.toFixed(2),
              `${((100 * rates.decode) / bound).toFixed(0)}%`,
              peakRssGB().toFixed(2),
              `${(fed / 1e6).toFixed(1)} MB`,
            ]);
            console.log(rows.at(-1)!.join(' | '));
          }
        } finally {
          await ev.close();
        }
      }
    } finally {
      await kernel.close();
    }
    const widths = header.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    console.log('\n' + rows.map((r) => r.map((x, c) => x.padEnd(widths[c]!)).join('  ')).join('\n'));
    console.log(
      `load average at the end: ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
  } finally {
    if (!keep) rmSync(tmp, { recursive: true, force: true });
  }
}
