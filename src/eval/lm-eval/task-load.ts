// Reading an lm-eval task file and its `include:` chain, bounded and confined: a task file may come from anyone,
// so what it makes evomerge read is limited to the **roots** of the suite — the folder of the task file the suite
// names and the suite file's own folder (paths resolved, symbolic links followed) — and an include chain is at most
// MAX_INCLUDE_DEPTH deep and MAX_INCLUDE_FILES files in all. Errors name the file and the key, never quote another
// file's content (a YAML error gives its kind and place only).
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { parse as parseYaml, YAMLError } from 'yaml';
import { EvomergeError } from '../../errors.ts';

/** Deepest include chain (a task file including one that includes one …). */
export const MAX_INCLUDE_DEPTH = 8;
/** Most files one task reads through includes, the task file included. */
export const MAX_INCLUDE_FILES = 32;

export const FUNCTION_TAG = Symbol('lm-eval !function');
export interface FunctionRef {
  readonly [FUNCTION_TAG]: string;
}

/** Whether `p` lies under one of `roots` (both sides resolved, symbolic links followed where the path exists). */
export function underRoots(p: string, roots: readonly string[]): boolean {
  const real = (x: string): string => {
    try {
      return realpathSync(x);
    } catch {
      return resolve(x);
    }
  };
  const target = real(p);
  return roots.some((r) => {
    const rel = relative(real(r), target);
    return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
  });
}

/** The roots as a phrase for messages. */
export function rootsPhrase(roots: readonly string[]): string {
  return `the task file's folder or the suite's folder (${[...new Set(roots)].join(', ')})`;
}

export function readTaskYaml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new EvomergeError('lm_eval.not_found', 'lm-eval task file not found', { file });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, {
      customTags: [{ tag: '!function', resolve: (s: string): FunctionRef => ({ [FUNCTION_TAG]: s }) }],
    });
  } catch (err) {
    // the parser's message quotes the text around the error: give its kind and place only
    const where =
      err instanceof YAMLError && err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
    const kind = err instanceof YAMLError ? ` (${err.code}${where})` : '';
    throw new EvomergeError('lm_eval.bad_yaml', `not valid YAML${kind}`, { file });
  }
  if (!isRecord(doc))
    throw new EvomergeError('lm_eval.bad_yaml', 'expected a mapping of task keys', { file, field: '(top level)' });
  return doc;
}

/** Reads `file` and its includes (the including file's keys win, as lm-eval's load_yaml_config does). */
export function loadWithIncludes(
  file: string,
  roots: readonly string[],
  keyFiles: Map<string, string>,
  chain: string[] = [],
  count = { files: 0 },
): Record<string, unknown> {
  if (chain.includes(file))
    throw new EvomergeError('lm_eval.bad_include', `includes itself (${[...chain, file].join(' → ')})`, {
      file: chain[chain.length - 1]!,
      field: 'include',
    });
  if (++count.files > MAX_INCLUDE_FILES)
    throw new EvomergeError('lm_eval.bad_include', `the include chain reads more than ${MAX_INCLUDE_FILES} files`, {
      file: chain[chain.length - 1] ?? file,
      field: 'include',
    });
  const doc = readTaskYaml(file);
  const merged: Record<string, unknown> = {};
  if (doc.include !== undefined) {
    if (chain.length + 1 >= MAX_INCLUDE_DEPTH)
      throw new EvomergeError('lm_eval.bad_include', `includes nest deeper than ${MAX_INCLUDE_DEPTH} files`, {
        file,
        field: 'include',
      });
    const list = Array.isArray(doc.include) ? doc.include : [doc.include];
    for (const inc of list) {
      if (typeof inc !== 'string' || inc === '')
        throw new EvomergeError('lm_eval.bad_include', 'expected a file path', { file, field: 'include' });
      const base = isAbsolute(inc) ? inc : resolve(dirname(file), inc);
      const outside = (): never => {
        throw new EvomergeError('lm_eval.outside_roots', `${inc} lies outside ${rootsPhrase(roots)}`, {
          file,
          field: 'include',
        });
      };
      if (!underRoots(base, roots)) outside();
      const target = [base, `${base}.yaml`, `${base}.yml`].find((p) => existsSync(p) && statSync(p).isFile());
      if (!target)
        throw new EvomergeError('lm_eval.bad_include', `${inc} not found (nor ${inc}.yaml) next to the task file`, {
          file,
          field: 'include',
        });
      if (!underRoots(target, roots)) outside();
      Object.assign(merged, loadWithIncludes(target, roots, keyFiles, [...chain, file], count));
    }
  }
  for (const [k, v] of Object.entries(doc)) {
    if (k === 'include') continue;
    merged[k] = v;
    keyFiles.set(k, file);
  }
  return merged;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
