// The import direction of STYLE.md §8.2, made executable: checkpoint ← merge ← search ← release; eval knows
// neither merge nor search; the store, gates, recipes, kernels and optimisers stand alone; the report reads only
// the store and the gates. No file imports itself back through others (no cycles). One adapter per runtime.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(__dirname, '../../src');

/** Modules every module may import: the error type, the value ± SE type and the folder maker. */
const OPEN_TO_ALL = ['errors', 'estimate', 'folders'];

/** Which modules each module may import (besides OPEN_TO_ALL). */
const ALLOWED: Record<string, string[]> = {
  checkpoint: [],
  kernel: [],
  recipe: [],
  gates: [],
  store: [],
  'search/optimizers': [],
  // the ONNX graph builder: config.json + tensor names → an ONNX model, with no runtime attached
  graph: ['checkpoint'],
  merge: ['kernel', 'checkpoint', 'recipe'],
  eval: ['graph', 'checkpoint'],
  search: ['search/optimizers', 'merge', 'eval', 'graph', 'gates', 'store', 'recipe', 'checkpoint', 'kernel'],
  // the job queue sits on the search: it carries the search's candidates to workers and scores them there
  queue: ['search', 'eval', 'graph', 'store', 'kernel'],
  report: ['store', 'gates'],
  release: ['report', 'search', 'store', 'gates', 'merge', 'eval', 'graph', 'recipe', 'checkpoint', 'kernel'],
  cli: [
    'queue',
    'release',
    'report',
    'search',
    'search/optimizers',
    'store',
    'gates',
    'merge',
    'eval',
    'graph',
    'recipe',
    'checkpoint',
    'kernel',
  ],
};

/** Runtime packages that only one module may import: the single adapter for that runtime. */
const SINGLE_ADAPTER: Record<string, string> = {
  'onnxruntime-node': 'eval/onnx-session.ts',
  webgpu: 'kernel/gpu/device.ts',
  'better-sqlite3': 'store/db.ts',
};

const BENCH = path.resolve(__dirname, '../../bench');

/** A statement handing SQL text to SQLite, or a string that starts with an SQL statement. */
const SQL_CALL = /\.(prepare|exec|pragma)\(\s*[`'"]/;
const SQL_TEXT = /[`'"]\s*(SELECT\s|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|VIEW))/i;

/** Source files stay readable in one sitting; a file past the budget needs a reason here. */
const MAX_SOURCE_LINES = 600;
const OVERSIZED: Record<string, number> = {};

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function moduleOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep).join('/');
  if (rel === 'errors.ts') return 'errors';
  if (rel === 'estimate.ts') return 'estimate';
  if (rel === 'folders.ts') return 'folders';
  if (rel.startsWith('search/optimizers/')) return 'search/optimizers';
  return rel.split('/')[0];
}

/** Import specifiers of a file, with whether the import is type-only (erased at run time). */
function importsOf(file: string): { spec: string; typeOnly: boolean }[] {
  const text = readFileSync(file, 'utf8');
  const out: { spec: string; typeOnly: boolean }[] = [];
  const re = /(?:^|\n)\s*(import|export)\s+(type\s+)?[^'";]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    out.push({ spec: m[3] ?? m[4], typeOnly: Boolean(m[2]) });
  }
  return out;
}

const files = walk(SRC);

describe('architecture', () => {
  it('finds the sources', () => {
    expect(files.length).toBeGreaterThan(40);
  });

  it('imports flow one way (STYLE.md §8.2)', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = moduleOf(file);
      for (const { spec, typeOnly } of importsOf(file)) {
        if (!spec.startsWith('.')) continue;
        const to = moduleOf(path.resolve(path.dirname(file), spec));
        if (to === from || OPEN_TO_ALL.includes(to)) continue;
        // the store may name the records it stores, nothing that decides
        if (from === 'store' && typeOnly) continue;
        if (!(ALLOWED[from] ?? []).includes(to))
          violations.push(`${path.relative(SRC, file)} → ${spec} (${from} may not import ${to})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('every module has a rule, and the rules form no cycle', () => {
    const modules = new Set(files.map(moduleOf).filter((m) => !OPEN_TO_ALL.includes(m)));
    expect([...modules].filter((m) => !(m in ALLOWED))).toEqual([]);
    expect(cyclesOf(new Map(Object.entries(ALLOWED)))).toEqual([]);
  });

  it('no import cycles between files, type-only imports included', () => {
    const graph = new Map<string, string[]>();
    for (const file of files) {
      const rel = path.relative(SRC, file).split(path.sep).join('/');
      const targets = importsOf(file)
        .filter(({ spec }) => spec.startsWith('.'))
        .map(({ spec }) =>
          path
            .relative(SRC, path.resolve(path.dirname(file), spec))
            .split(path.sep)
            .join('/'),
        );
      graph.set(rel, targets);
    }
    expect(cyclesOf(graph)).toEqual([]);
  });

  it('keeps one adapter per runtime', () => {
    const violations: string[] = [];
    for (const file of files) {
      const rel = path.relative(SRC, file).split(path.sep).join('/');
      for (const { spec, typeOnly } of importsOf(file)) {
        const owner = SINGLE_ADAPTER[spec];
        if (owner && owner !== rel && !typeOnly) violations.push(`${rel} imports ${spec} (only ${owner} may)`);
      }
    }
    expect(violations).toEqual([]);
  });
  it('keeps SQL inside the store', () => {
    // the store is the one layer that knows the schema: everything else asks it through named methods
    const violations: string[] = [];
    for (const file of files) {
      const rel = path.relative(SRC, file).split(path.sep).join('/');
      if (rel.startsWith('store/')) continue;
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (SQL_CALL.test(line) || SQL_TEXT.test(line)) violations.push(`${rel}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(violations).toEqual([]);
  });

  it('keeps source files within the size budget', () => {
    const over = files.flatMap((file) => {
      const rel = path.relative(SRC, file).split(path.sep).join('/');
      const lines = readFileSync(file, 'utf8').trimEnd().split('\n').length;
      return lines > (OVERSIZED[rel] ?? MAX_SOURCE_LINES) ? [`${rel}: ${lines} lines`] : [];
    });
    expect(over).toEqual([]);
    // an allow-list entry that is no longer needed goes
    expect(Object.keys(OVERSIZED).filter((rel) => !files.some((f) => f.endsWith(rel)))).toEqual([]);
  });

  it('has no import cycles in bench/ or between bench/ and src/', () => {
    const graph = new Map<string, string[]>();
    for (const file of [...files, ...walk(BENCH)]) {
      graph.set(
        file,
        importsOf(file)
          .filter(({ spec }) => spec.startsWith('.'))
          .map(({ spec }) => path.resolve(path.dirname(file), spec)),
      );
    }
    expect(cyclesOf(graph).map((c) => c.split(path.resolve(SRC, '..') + path.sep).join(''))).toEqual([]);
  });

  it('keeps every line within 140 characters', () => {
    const root = path.resolve(__dirname, '../..');
    const walk = (dir: string): string[] =>
      readdirSync(dir).flatMap((name) => {
        const full = path.join(dir, name);
        if (statSync(full).isDirectory()) return walk(full);
        return /\.(ts|mjs)$/.test(name) ? [full] : [];
      });
    const long = ['src', 'test', 'bench'].flatMap((dir) =>
      walk(path.join(root, dir)).flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .flatMap((line, i) => (line.length > 140 ? [`${path.relative(root, file)}:${i + 1}`] : [])),
      ),
    );
    expect(long).toEqual([]);
  });
});

/** The strongly connected components of more than one node (or a node importing itself): each is a cycle. */
function cyclesOf(graph: ReadonlyMap<string, readonly string[]>): string[] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.sort().join(' ⇄ '));
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles.sort();
}
