// `npm run bench -- eval-vs-torch [--python python3] [--reps 5] [--threads 2] [--split test]`: `evomerge eval` of the
// micro zoo's base on its six tasks against the zoo's PyTorch scorer (bench/torch-scorer.py: float32, the whole
// sequence per step, prompts batched by equal length), both as whole processes, alternated rep by rep so that a
// change of load hits both. Also times `evomerge --version` (node + tsx + the CLI's imports: the start-up every
// command pays) and `evomerge eval --spin`, and prints per task the median seconds of each scorer, so the gap can be
// split into start-up, the tasks, and spinning. Needs a python with torch (Debian's python3-torch, or a venv).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';

const ROOT = path.join(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin/evomerge.js');
const MODEL = path.join(ROOT, 'models/micro/base');

interface Run {
  wall: number;
  /** user + system CPU seconds of the process and its threads: less sensitive than wall to a shared machine */
  cpu: number;
  tasks: Record<string, number>;
}

/** Runs a command through bash so that `times` can report the child's CPU seconds after it exits. */
function timed(cmd: string, args: string[]): { wall: number; cpu: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync('bash', ['-c', '"$@" && times >&2', 'bash', cmd, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  // `times` prints the shell's own times, then its children's: "0m10.930s 0m0.645s"
  const children = r.stderr.trim().split('\n').at(-1)!;
  const secs = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return { wall, cpu: secs.reduce((a, b) => a + b, 0), stdout: r.stdout };
}

function evomerge(split: string, threads: string, spin: boolean): Run {
  const args = [BIN, 'eval', MODEL, '--suite', 'evals/micro.yaml', '--split', split, '--threads', threads, '--json'];
  const { wall, cpu, stdout } = timed(process.execPath, spin ? [...args, '--spin'] : args);
  const scores = (JSON.parse(stdout) as { scores: { task: string; seconds: number }[] }).scores;
  return { wall, cpu, tasks: Object.fromEntries(scores.map((s) => [s.task, s.seconds])) };
}

function torch(python: string, split: string, threads: string): Run & { load: number } {
  const { wall, cpu, stdout } = timed(python, [
    'bench/torch-scorer.py',
    MODEL,
    path.join(ROOT, 'evals/micro'),
    '--split',
    split,
    '--threads',
    threads,
  ]);
  const out = JSON.parse(stdout) as { load_s: number; tasks: Record<string, { seconds: number }> };
  return {
    wall,
    cpu,
    load: out.load_s,
    tasks: Object.fromEntries(Object.entries(out.tasks).map(([t, v]) => [t, v.seconds])),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      python: { type: 'string', default: 'python3' },
      reps: { type: 'string', default: '5' },
      threads: { type: 'string', default: '2' },
      split: { type: 'string', default: 'test' },
    },
  });
  const reps = Number(values.reps);
  const loadBefore = loadavg()[0]!;
  const ev: Run[] = [];
  const evSpin: Run[] = [];
  const py: Run[] = [];
  const startup: { wall: number; cpu: number }[] = [];
  for (let r = 0; r < reps; r++) {
    startup.push(timed(process.execPath, [BIN, '--version']));
    ev.push(evomerge(values.split, values.threads, false));
    py.push(torch(values.python, values.split, values.threads));
    evSpin.push(evomerge(values.split, values.threads, true));
    process.stderr.write(
      `rep ${r + 1}/${reps}: evomerge ${ev.at(-1)!.wall.toFixed(2)} s, --spin ${evSpin.at(-1)!.wall.toFixed(2)} s, ` +
        `torch ${py.at(-1)!.wall.toFixed(2)} s\n`,
    );
  }
  const loadAfter = loadavg()[0]!;
  const f = (v: number) => v.toFixed(2);
  console.log(
    `\nmicro zoo base, ${values.split} split, ${values.threads} threads, median of ${reps} alternated reps; ` +
      `load average ${loadBefore.toFixed(1)} → ${loadAfter.toFixed(1)}\n`,
  );
  console.log('| scorer | whole process wall s | torch ÷ this (wall) | CPU s | torch ÷ this (CPU) |');
  console.log('|---|---|---|---|---|');
  const torchWall = median(py.map((r) => r.wall));
  const torchCpu = median(py.map((r) => r.cpu));
  for (const [name, runs] of [
    ['evomerge eval', ev],
    ['evomerge eval --spin', evSpin],
    ['PyTorch scorer', py],
  ] as const) {
    const w = median(runs.map((r) => r.wall));
    const c = median(runs.map((r) => r.cpu));
    console.log(`| ${name} | ${f(w)} | ${f(torchWall / w)}× | ${f(c)} | ${f(torchCpu / c)}× |`);
  }
  console.log(
    `| evomerge --version (start-up only) | ${f(median(startup.map((s) => s.wall)))} | — | ` +
      `${f(median(startup.map((s) => s.cpu)))} | — |`,
  );
  console.log('\n| task | evomerge s | --spin s | PyTorch s |');
  console.log('|---|---|---|---|');
  for (const task of Object.keys(py[0]!.tasks)) {
    const m = (runs: Run[]) => f(median(runs.map((r) => r.tasks[task] ?? Number.NaN)));
    console.log(`| ${task} | ${m(ev)} | ${m(evSpin)} | ${m(py)} |`);
  }
  const sum = (runs: Run[]) => median(runs.map((r) => Object.values(r.tasks).reduce((a, b) => a + b, 0)));
  console.log(`| all tasks | ${f(sum(ev))} | ${f(sum(evSpin))} | ${f(sum(py))} |`);
}
