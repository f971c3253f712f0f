// The graph builder carries no runtime: building a graph and writing a data-flow export (checkpoint, config.json,
// model.onnx and its weights) loads no onnxruntime-node, so a release machine without ONNX Runtime can write
// one. Each case imports modules in a fresh `node --import tsx` process and lists the onnxruntime-node files it
// loaded (a CommonJS package, so they land in the require cache); the last case shows the probe sees them.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../../..');

/** The onnxruntime-node files loaded by a process that imports `modules` (paths relative to the repository). */
function runtimeFilesLoadedBy(modules: readonly string[]): string[] {
  const script = [
    "import { createRequire } from 'node:module';",
    "import { pathToFileURL } from 'node:url';",
    `for (const m of ${JSON.stringify(modules.map((m) => join(ROOT, m)))}) await import(pathToFileURL(m).href);`,
    'const loaded = Object.keys(createRequire(import.meta.url).cache);',
    "console.log(JSON.stringify(loaded.filter((f) => f.includes('onnxruntime-node'))));",
  ].join('\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
}

describe('the graph builder loads no ONNX Runtime', () => {
  it('writing a data-flow export (src/release/data-flow-export.ts) loads no onnxruntime-node', () => {
    expect(runtimeFilesLoadedBy(['src/release/data-flow-export.ts'])).toEqual([]);
  });

  it('no module of src/graph/ loads onnxruntime-node', () => {
    const graph = readdirSync(join(ROOT, 'src/graph'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `src/graph/${f}`);
    expect(graph.length).toBeGreaterThan(5);
    expect(runtimeFilesLoadedBy(graph)).toEqual([]);
  });

  it('the probe sees onnxruntime-node when the runtime adapter (src/eval/onnx-session.ts) is loaded', () => {
    expect(runtimeFilesLoadedBy(['src/eval/onnx-session.ts']).length).toBeGreaterThan(0);
  });
});
