// Eval sets on disk: a JSONL file of objects, one item per line, read and checked against the fields a task
// needs. Every fault is one line naming the file, the line number and the field.
import { readFileSync } from 'node:fs';
import { EvomergeError } from '../errors.ts';

/** One item: its 1-based line and the task's roles (prompt, answer, text, choices) read from their fields. */
export interface EvalItem {
  readonly line: number;
  readonly values: Readonly<Record<string, string | readonly string[]>>;
}

/**
 * Reads `file` and returns one item per non-blank line. `fields` maps role → field name; every field must be a
 * string, except `choices`, a list of at least two strings. Blank lines are skipped; an empty file is an error.
 */
export function readEvalFile(file: string, fields: Readonly<Record<string, string>>): EvalItem[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new EvomergeError('eval.file_not_found', 'eval file not found', { file });
  }
  const items: EvalItem[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    const place = { file, line: i + 1 };
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (err) {
      // JSON.parse's message quotes the line: give the place only
      const at = /at position (\d+)/.exec((err as Error).message);
      throw new EvomergeError('eval.bad_jsonl', `not valid JSON${at ? ` (at position ${at[1]})` : ''}`, {
        ...place,
        field: '(line)',
      });
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
      throw new EvomergeError('eval.bad_jsonl', 'expected a JSON object', { ...place, field: '(line)' });
    }
    const rec = obj as Record<string, unknown>;
    const item: Record<string, string | readonly string[]> = {};
    for (const [role, name] of Object.entries(fields)) {
      const v = rec[name];
      if (role === 'choices') {
        if (v === undefined) continue; // the task may give the labels instead
        if (!Array.isArray(v) || v.length < 2 || v.some((c) => typeof c !== 'string')) {
          throw new EvomergeError('eval.bad_jsonl', 'expected a list of at least two strings', {
            ...place,
            field: name,
          });
        }
        item[role] = v as string[];
        continue;
      }
      if (v === undefined) throw new EvomergeError('eval.bad_jsonl', 'missing field', { ...place, field: name });
      if (typeof v !== 'string')
        throw new EvomergeError('eval.bad_jsonl', `expected a string, got ${Array.isArray(v) ? 'a list' : typeof v}`, {
          ...place,
          field: name,
        });
      item[role] = v;
    }
    items.push({ line: i + 1, values: item });
  }
  if (items.length === 0)
    throw new EvomergeError('eval.empty_file', 'the eval file has no items', { file, field: '(file)' });
  return items;
}
