// The docs of a task's split, from local files only: `dataset_path: json|csv|parquet` with
// dataset_kwargs.data_files (as datasets.load_dataset reads them), or, for a hub dataset, a local folder laid
// out as a downloaded hub dataset (`<dataset_name>/<split>-*.parquet|jsonl|json|csv`), named in the suite's
// `datasets:` map. Parquet through hyparquet.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { EvomergeError } from '../../errors.ts';
import type { LmEvalTask } from './task-file.ts';

export type Doc = Readonly<Record<string, unknown>>;

/** Where the docs of the hub datasets named by task files live: hub name → absolute folder. */
export type DatasetFolders = ReadonlyMap<string, string>;

/** The split names a task's data offers (without reading the files). */
export function availableSplits(task: LmEvalTask, folders: DatasetFolders): string[] {
  if (task.dataFiles) return Object.keys(task.dataFiles);
  const dir = datasetDir(task, folders);
  const names = new Set<string>();
  for (const f of readdirSync(dir)) {
    const m = /^([A-Za-z0-9_.]+?)(-[^/]*)?\.(parquet|jsonl|json|csv)$/.exec(f);
    if (m && statSync(join(dir, f)).isFile()) names.add(m[1]!);
  }
  return [...names];
}

/** Reads every doc of `split`; `splitKey` names the task-file key that asked for it (for messages). */
export async function loadSplit(
  task: LmEvalTask,
  split: string,
  splitKey: string,
  folders: DatasetFolders,
): Promise<Doc[]> {
  const files = splitFiles(task, split, splitKey, folders);
  const docs: Doc[] = [];
  for (const f of files) docs.push(...(await readDataFile(f)));
  if (docs.length === 0)
    throw new EvomergeError('lm_eval.empty_split', `split "${split}" has no rows`, {
      file: files[0]!,
      field: splitKey,
    });
  return docs;
}

function splitFiles(task: LmEvalTask, split: string, splitKey: string, folders: DatasetFolders): readonly string[] {
  const keyFile = task.keyFiles.get(splitKey) ?? task.file;
  if (task.dataFiles) {
    const files = task.dataFiles[split];
    if (!files)
      throw new EvomergeError(
        'lm_eval.no_split',
        `split "${split}" does not exist (data_files has: ${Object.keys(task.dataFiles).join(', ')})`,
        { file: keyFile, field: splitKey },
      );
    for (const f of files)
      if (!existsSync(f))
        throw new EvomergeError('lm_eval.data_not_found', `${f} not found`, {
          file: task.keyFiles.get('dataset_kwargs') ?? task.file,
          field: `dataset_kwargs.data_files.${split}`,
        });
    return files;
  }
  const dir = datasetDir(task, folders);
  const files = readdirSync(dir)
    .filter((f) => (f.startsWith(`${split}-`) || f.startsWith(`${split}.`)) && /\.(parquet|jsonl|json|csv)$/.test(f))
    .sort()
    .map((f) => join(dir, f));
  if (files.length === 0) {
    const has = availableSplits(task, folders);
    throw new EvomergeError(
      'lm_eval.no_split',
      `split "${split}" does not exist in ${dir} (it has: ${has.join(', ') || 'no split files'})`,
      { file: keyFile, field: splitKey },
    );
  }
  return files;
}

/** The local folder of a hub dataset: `<folder>/<dataset_name>/`, or the folder itself (or its default/ or data/). */
function datasetDir(task: LmEvalTask, folders: DatasetFolders): string {
  const root = folders.get(task.datasetPath);
  if (!root) {
    throw new EvomergeError(
      'lm_eval.no_local_data',
      `hub dataset "${task.datasetPath}" has no local folder: map it in the suite's \`datasets:\` (${task.datasetPath}: path/to/folder)`,
      { file: task.keyFiles.get('dataset_path') ?? task.file, field: 'dataset_path' },
    );
  }
  const candidates = task.datasetName
    ? [join(root, task.datasetName)]
    : [root, join(root, 'default'), join(root, 'data')];
  const dir = candidates.find(
    (d) =>
      existsSync(d) && statSync(d).isDirectory() && readdirSync(d).some((f) => /\.(parquet|jsonl|json|csv)$/.test(f)),
  );
  if (!dir) {
    const field = task.datasetName ? 'dataset_name' : 'dataset_path';
    throw new EvomergeError('lm_eval.no_local_data', `no data files in ${candidates[0]}`, {
      file: task.keyFiles.get(field) ?? task.file,
      field,
    });
  }
  return dir;
}

/** One data file as docs: JSON Lines (or a JSON array), CSV with a header row, or parquet. */
export async function readDataFile(file: string): Promise<Doc[]> {
  if (file.endsWith('.parquet')) {
    try {
      const rows = await parquetReadObjects({ file: await asyncBufferFromFile(file) });
      return rows.map((r) => normalise(r) as Doc);
    } catch (err) {
      throw new EvomergeError('lm_eval.bad_data', `cannot read parquet: ${(err as Error).message}`, { file });
    }
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new EvomergeError('lm_eval.data_not_found', 'data file not found', { file });
  }
  if (file.endsWith('.csv')) return readCsv(text, file);
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    try {
      const arr = JSON.parse(text) as unknown;
      if (!Array.isArray(arr) || !arr.every((x) => typeof x === 'object' && x !== null && !Array.isArray(x)))
        throw new Error('expected a list of objects');
      return arr as Doc[];
    } catch (err) {
      throw new EvomergeError('lm_eval.bad_data', `not a JSON list of objects${jsonErrorPlace(err)}`, { file });
    }
  }
  const docs: Doc[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (err) {
      throw new EvomergeError('lm_eval.bad_data', `not valid JSON${jsonErrorPlace(err)}`, {
        file,
        line: i + 1,
        field: '(line)',
      });
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
      throw new EvomergeError('lm_eval.bad_data', 'expected a JSON object', { file, line: i + 1, field: '(line)' });
    docs.push(obj as Doc);
  });
  return docs;
}

/** Where JSON.parse stopped (" (at position N)"), never its message: that quotes the file's text. */
function jsonErrorPlace(err: unknown): string {
  const m = /at position (\d+)/.exec(err instanceof Error ? err.message : '');
  return m ? ` (at position ${m[1]})` : '';
}

/** bigint (parquet INT64) → number, recursively, so templates print 42 and not 42n. */
function normalise(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(normalise);
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  return v;
}

/** RFC 4180 CSV with a header row; a column whose every value is a number becomes numbers (as pandas infers). */
function readCsv(text: string, file: string): Doc[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      cell = '';
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
    } else cell += c;
  }
  if (quoted) throw new EvomergeError('lm_eval.bad_data', 'unclosed quote', { file });
  if (cell !== '' || row.length > 0) rows.push([...row, cell]);
  const [header, ...body] = rows;
  if (!header) return [];
  body.forEach((r, i) => {
    if (r.length !== header.length)
      throw new EvomergeError('lm_eval.bad_data', `expected ${header.length} cells, got ${r.length}`, {
        file,
        line: i + 2,
        field: '(row)',
      });
  });
  const numeric = header.map(
    (_, c) => body.length > 0 && body.every((r) => /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(r[c]!)),
  );
  return body.map((r) => Object.fromEntries(header.map((h, c) => [h, numeric[c] ? Number(r[c]) : r[c]])));
}
