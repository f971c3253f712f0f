// Streaming proof: writes synthetic Llama-like checkpoints (1 base + 3 experts, ≥ 1 GB each) with the project's
// CheckpointWriter, runs `evomerge merge` on them in a child process and compares the child's peak RSS with
// (sources + 2) × the largest tensor + the CLI's own baseline RSS, not with the model size.
// `npm run bench -- merge-memory [--model-gb 1.2] [--keep] [--methods task_arithmetic,ties] [--hidden 4096]
//  [--intermediate 14336]`

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CheckpointWriter, openModelDir, type CheckpointPlanEntry } from '../src/checkpoint/model-dir.ts';
import { numel } from '../src/checkpoint/tensor-source.ts';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin/evomerge.js');
const EXPERTS = 3;
const WEIGHTS = [0.5, 0.3, 0.2];
const GB = 1e9;

/** A Llama-style layout (mergekit llama.json names, GQA with a quarter of the heads for k/v) of ≥ targetBytes. */
function llamaLayout(
  targetBytes: number,
  hidden: number,
  intermediate: number,
): { plan: CheckpointPlanEntry[]; config: Record<string, unknown> } {
  const kv = hidden / 4;
  const layer = (i: number): CheckpointPlanEntry[] => [
    { name: `model.layers.${i}.input_layernorm.weight`, shape: [hidden] },
    { name: `model.layers.${i}.self_attn.q_proj.weight`, shape: [hidden, hidden] },
    { name: `model.layers.${i}.self_attn.k_proj.weight`, shape: [kv, hidden] },
    { name: `model.layers.${i}.self_attn.v_proj.weight`, shape: [kv, hidden] },
    { name: `model.layers.${i}.self_attn.o_proj.weight`, shape: [hidden, hidden] },
    { name: `model.layers.${i}.post_attention_layernorm.weight`, shape: [hidden] },
    { name: `model.layers.${i}.mlp.up_proj.weight`, shape: [intermediate, hidden] },
    { name: `model.layers.${i}.mlp.gate_proj.weight`, shape: [intermediate, hidden] },
    { name: `model.layers.${i}.mlp.down_proj.weight`, shape: [hidden, intermediate] },
  ];
  const bytes = (es: CheckpointPlanEntry[]) => es.reduce((s, e) => s + numel(e.shape) * 4, 0);
  const layerBytes = bytes(layer(0));
  // Fewest layers whose remainder the two embedding matrices can fill without outgrowing an MLP matrix.
  let layers = Math.max(1, Math.floor(targetBytes / layerBytes));
  let vocab = 256;
  for (; ; layers++) {
    const rest = targetBytes - layers * layerBytes - hidden * 4;
    const need = Math.ceil(Math.max(0, rest) / (2 * hidden * 4) / 256) * 256;
    if (need <= intermediate) {
      vocab = Math.max(256, need);
      break;
    }
  }
  const plan = [
    { name: 'model.embed_tokens.weight', shape: [vocab, hidden] },
    ...Array.from({ length: layers }, (_, i) => layer(i)).flat(),
    { name: 'model.norm.weight', shape: [hidden] },
    { name: 'lm_head.weight', shape: [vocab, hidden] },
  ];
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: Math.max(1, hidden / 128),
    num_key_value_heads: Math.max(1, kv / 128),
    vocab_size: vocab,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: false,
    torch_dtype: 'float32',
  };
  return { plan, config };
}

/**
 * Deterministic uniform values in [−scale, scale) (xorshift32 seeded per model and tensor), added to `offset`
 * (a norm's 1, or the base tensor for an expert's small task vector).
 */
function fill(out: Float32Array, seed: number, scale: number, offset: number | Float32Array): void {
  let s = (Math.imul(seed, 0x9e3779b1) ^ 0x85ebca6b) >>> 0 || 1;
  const k = (2 * scale) / 4294967296;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (typeof offset === 'number' ? offset : offset[i]) + ((s >>> 0) * k - scale);
  }
}

/**
 * Writes base and experts tensor by tensor, all four writers open at once: the generator holds two tensors
 * (the base's and one expert's), never a model.
 */
function writeModels(dir: string, names: string[], plan: CheckpointPlanEntry[], config: Record<string, unknown>): void {
  const writers = names.map(
    (n) => new CheckpointWriter({ outDir: join(dir, n), dtype: 'F32', shardSizeBytes: 5 * GB, plan, config }),
  );
  const largest = Math.max(...plan.map((e) => numel(e.shape)));
  const baseBuf = new Float32Array(largest);
  const expertBuf = new Float32Array(largest);
  plan.forEach((e, t) => {
    const n = numel(e.shape);
    const base = baseBuf.subarray(0, n);
    const norm = e.shape.length === 1;
    fill(base, t * 16 + 1, norm ? 0.05 : 0.02, norm ? 1 : 0);
    writers[0].writeTensor(e.name, { shape: e.shape, data: base });
    for (let m = 1; m < writers.length; m++) {
      const x = expertBuf.subarray(0, n);
      fill(x, t * 16 + 1 + m, 0.004, base);
      writers[m].writeTensor(e.name, { shape: e.shape, data: x });
    }
  });
  for (const w of writers) w.finish();
}

function recipeYaml(method: string): string {
  const perModel = (m: number): string => {
    const p = [`weight: ${WEIGHTS[m]}`];
    if (method !== 'task_arithmetic') p.push('density: 0.5');
    return `  - model: expert${m}\n    parameters: {${p.join(', ')}}\n`;
  };
  const global = method === 'task_arithmetic' ? '' : 'parameters: {normalize: true}\n';
  return (
    `merge_method: ${method}\nbase_model: base\ndtype: float32\nrandom_seed: 7\n${global}` +
    `models:\n${Array.from({ length: EXPERTS }, (_, m) => perModel(m)).join('')}`
  );
}

/**
 * Written into the temp folder and preloaded with --import: records the process's peak RSS at exit. Linux's
 * VmHWM is the peak of this process image; getrusage's maxRSS (the fallback where there is no /proc) also
 * keeps the parent's RSS at fork time across exec, so with a large parent it overstates a small child.
 */
const PRELOAD = `import { readFileSync, writeFileSync } from 'node:fs';
process.on('exit', () => {
  let peak = process.resourceUsage().maxRSS * 1024;
  try { peak = Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024; } catch {}
  writeFileSync(process.env.EVOMERGE_BENCH_RSS_FILE, String(peak));
});
`;

interface ChildRun {
  code: number | null;
  stdout: string;
  stderr: string;
  wallS: number;
  /** Peak RSS of the child as it saw it at exit (VmHWM, else getrusage maxRSS), bytes. */
  maxRss: number;
  /** Largest VmHWM seen by polling /proc/<pid>/status every 20 ms (a cross-check; 0 where /proc is absent). */
  polledHwm: number;
}

/** Runs `node --import <preload> bin/evomerge.js <args>` and measures its peak resident set. */
async function runChild(args: string[], preload: string, rssFile: string): Promise<ChildRun> {
  rmSync(rssFile, { force: true });
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', pathToFileURL(preload).href, BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, EVOMERGE_BENCH_RSS_FILE: rssFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  let polledHwm = 0;
  const status = `/proc/${child.pid}/status`;
  const poll = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(status, 'utf8'));
      if (m) polledHwm = Math.max(polledHwm, Number(m[1]) * 1024);
    } catch {
      // the child has exited (or there is no /proc): the rusage figure stands alone
    }
  }, 20);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(poll);
  const wallS = (performance.now() - t0) / 1000;
  const maxRss = existsSync(rssFile) ? Number(readFileSync(rssFile, 'utf8')) : NaN;
  return { code, stdout, stderr, wallS, maxRss, polledHwm };
}

/** task_arithmetic's expected model.norm.weight, computed here from the generator: proves the child merged. */
function checkTaskArithmetic(dir: string, out: string, plan: CheckpointPlanEntry[]): string {
  const t = plan.findIndex((e) => e.name === 'model.norm.weight');
  const n = numel(plan[t].shape);
  const base = new Float32Array(n);
  fill(base, t * 16 + 1, 0.05, 1);
  const expected = new Float32Array(n);
  expected.set(base);
  for (let m = 0; m < EXPERTS; m++) {
    const x = new Float32Array(n);
    fill(x, t * 16 + 2 + m, 0.004, base);
    for (let i = 0; i < n; i++) expected[i] += WEIGHTS[m] * (x[i] - base[i]);
  }
  const merged = openModelDir(out);
  try {
    const got = merged.tensors.readTensor('model.norm.weight').data;
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]) / Math.abs(expected[i]));
    if (merged.tensors.tensorNames().length !== plan.length)
      throw new Error(`output has ${merged.tensors.tensorNames().length} tensors, expected ${plan.length}`);
    if (worst > 1e-5)
      throw new Error(
        `task_arithmetic output model.norm.weight differs from the expected merge by ${worst} (relative)`,
      );
    return `output checked: ${plan.length} tensors, model.norm.weight = base + Σ wᵢ(xᵢ − base) within ${worst.toExponential(1)}`;
  } finally {
    merged.close();
  }
}

const fmtGB = (b: number): string => (b / GB).toFixed(3);

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'model-gb': { type: 'string', default: '1.2' },
      keep: { type: 'boolean', default: false },
      methods: { type: 'string', default: 'task_arithmetic,ties' },
      hidden: { type: 'string', default: '4096' },
      intermediate: { type: 'string', default: '14336' },
    },
  });
  const methods = values.methods.split(',');
  for (const m of methods) {
    if (!['task_arithmetic', 'ties', 'dare_ties'].includes(m))
      throw new Error(
        `--methods: "${m}" is not one of task_arithmetic, ties, dare_ties (methods reading base + ${EXPERTS} experts)`,
      );
  }
  const { plan, config } = llamaLayout(
    Number(values['model-gb']) * GB,
    Number(values.hidden),
    Number(values.intermediate),
  );
  const modelBytes = plan.reduce((s, e) => s + numel(e.shape) * 4, 0);
  const largest = plan.reduce((a, e) => (numel(e.shape) > numel(a.shape) ? e : a));
  const largestBytes = numel(largest.shape) * 4;
  const sources = EXPERTS + 1;

  const dir = mkdtempSync(join(tmpdir(), 'evomerge-bench-merge-memory-'));
  const preload = join(dir, 'max-rss.mjs');
  const rssFile = join(dir, 'max-rss.txt');
  writeFileSync(preload, PRELOAD);
  const rows: string[][] = [
    [
      'method',
      'model GB',
      'largest tensor GB',
      'sources',
      'bound GB',
      'peak RSS GB',
      'polled VmHWM GB',
      '(peak − baseline) / largest',
      'merge s',
      'child wall s',
      'peak ≤ bound',
    ],
  ];
  const notes: string[] = [];
  let allWithin = true;
  let worstPeak = 0;
  let bound = 0;
  try {
    console.log(
      `writing 1 base + ${EXPERTS} experts: ${plan.length} float32 tensors, ${config.num_hidden_layers} layers, vocab ` +
        `${config.vocab_size}, ` +
        `${fmtGB(modelBytes)} GB each; largest ${largest.name} ${largest.shape.join('×')} (${fmtGB(largestBytes)} GB) → ${dir}`,
    );
    const g0 = performance.now();
    writeModels(dir, ['base', ...Array.from({ length: EXPERTS }, (_, m) => `expert${m}`)], plan, config);
    console.log(`written in ${((performance.now() - g0) / 1000).toFixed(1)} s`);

    const baseline = await runChild(['--help'], preload, rssFile);
    if (baseline.code !== 0) throw new Error(`evomerge --help exited ${baseline.code}: ${baseline.stderr.trim()}`);
    bound = (sources + 2) * largestBytes + baseline.maxRss;
    rows.push([
      '(evomerge --help)',
      '',
      '',
      '',
      '',
      fmtGB(baseline.maxRss),
      fmtGB(baseline.polledHwm),
      '',
      '',
      baseline.wallS.toFixed(2),
      '',
    ]);

    for (const method of methods) {
      const recipe = join(dir, `${method}.yaml`);
      const out = join(dir, `out-${method}`);
      writeFileSync(recipe, recipeYaml(method));
      const r = await runChild(['merge', recipe, '-o', out, '--device', 'cpu'], preload, rssFile);
      if (r.code !== 0) throw new Error(`evomerge merge (${method}) exited ${r.code}: ${r.stderr.trim()}`);
      const mergeS = /in ([\d.]+) s\s*$/.exec(r.stdout.trim())?.[1] ?? '?';
      const within = r.maxRss <= bound;
      allWithin &&= within;
      worstPeak = Math.max(worstPeak, r.maxRss);
      rows.push([
        method,
        fmtGB(modelBytes),
        fmtGB(largestBytes),
        String(sources),
        fmtGB(bound),
        fmtGB(r.maxRss),
        fmtGB(r.polledHwm),
        ((r.maxRss - baseline.maxRss) / largestBytes).toFixed(2),
        mergeS,
        r.wallS.toFixed(1),
        within ? 'yes' : 'NO',
      ]);
      notes.push(`${method}: ${r.stdout.trim()}`);
      if (method === 'task_arithmetic') notes.push(checkTaskArithmetic(dir, out, plan));
      if (!values.keep) rmSync(out, { recursive: true, force: true });
    }
  } finally {
    if (values.keep) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c])).join('  '));
  console.log(
    `bound = (sources + 2) × largest tensor + baseline (peak RSS of \`evomerge --help\`); peak RSS = the child's VmHWM at exit; ` +
      `GB = 1e9 bytes; node ${process.version}; load average at the end ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')} on ${cpus().length} cores`,
  );
  for (const note of notes) console.log(note);
  console.log(
    allWithin
      ? `verdict: streaming holds — peak RSS ≤ bound for every method (worst ${fmtGB(worstPeak)} GB, ` +
          `${((100 * worstPeak) / modelBytes).toFixed(0)}% of one model, ` +
          `${((100 * worstPeak) / (sources * modelBytes)).toFixed(0)}% of the ${sources} sources)`
      : `verdict: peak RSS EXCEEDS the bound (worst ${fmtGB(worstPeak)} GB, ${fmtGB(worstPeak - bound)} GB ≈ ` +
          `${((worstPeak - bound) / largestBytes).toFixed(2)} ` +
          `largest tensors over): it streams (${((100 * worstPeak) / (sources * modelBytes)).toFixed(0)}% of the ` +
          `${sources} sources) but holds more than sources + 2 tensors at once`,
  );
  if (!allWithin) process.exitCode = 1;
}
