// A task's doc_to_text / doc_to_target / doc_to_choice applied to one doc, with lm-eval's rules (api/task.py
// ConfigurableTask): a string naming a field of the doc reads it; any other string is a Jinja template; a
// rendered text that is all digits becomes an index when the task has choices; a rendered doc_to_choice (and a
// rendered target that looks like a list) goes through Python's literal_eval.
import { EvomergeError } from '../../errors.ts';
import { JinjaTemplate, TemplateError } from './jinja.ts';
import { LiteralError, parsePythonLiteral } from './python-literal.ts';
import type { Doc } from './dataset.ts';
import type { LmEvalTask } from './task-file.ts';

export type TextValue = string | number;
export type TargetValue = string | number | readonly (string | number)[];

const templates = new Map<string, JinjaTemplate>();

/** Renders a template string against a doc; errors name the task file, the key, the template and the doc. */
export function renderTemplate(task: LmEvalTask, key: string, source: string, doc: Doc, where: string): string {
  let t = templates.get(source);
  try {
    if (!t) templates.set(source, (t = new JinjaTemplate(source, { strict: true })));
    return t.render(doc);
  } catch (err) {
    if (!(err instanceof TemplateError)) throw err;
    throw new EvomergeError(
      'lm_eval.template_error',
      `Jinja error in ${JSON.stringify(source)} on ${where}: ${err.message}`,
      { file: task.keyFiles.get(key) ?? task.file, field: key },
    );
  }
}

function fieldOrTemplate(task: LmEvalTask, key: string, spec: string, doc: Doc, where: string): unknown {
  if (Object.prototype.hasOwnProperty.call(doc, spec)) return doc[spec];
  return renderTemplate(task, key, spec, doc, where);
}

export function docToText(task: LmEvalTask, doc: Doc, where: string): TextValue {
  const spec = task.docToText;
  if (typeof spec === 'number') return spec;
  if (typeof spec !== 'string')
    throw new EvomergeError('lm_eval.bad_task', 'expected a field name or a template', {
      file: task.keyFiles.get('doc_to_text') ?? task.file,
      field: 'doc_to_text',
    });
  const isField = Object.prototype.hasOwnProperty.call(doc, spec);
  const v = fieldOrTemplate(task, 'doc_to_text', spec, doc, where);
  if (!isField && typeof v === 'string' && /^\d+$/.test(v) && task.docToChoice !== undefined) return Number(v);
  return typeof v === 'number' ? v : String(v);
}

export function docToTarget(task: LmEvalTask, doc: Doc, where: string): TargetValue {
  const spec = task.docToTarget;
  if (typeof spec === 'number') return spec;
  if (Array.isArray(spec)) return spec as readonly string[];
  const s = spec as string;
  if (Object.prototype.hasOwnProperty.call(doc, s)) {
    const v = doc[s];
    if (typeof v === 'number' || typeof v === 'string') return v;
    if (Array.isArray(v)) return v as (string | number)[];
    return String(v);
  }
  const text = renderTemplate(task, 'doc_to_target', s, doc, where);
  if (/^\d+$/.test(text) && task.docToChoice !== undefined) return Number(text);
  if (text.length >= 2 && text.startsWith('[') && text.endsWith(']')) {
    try {
      const v = parsePythonLiteral(text);
      if (Array.isArray(v)) return v as (string | number)[];
    } catch (err) {
      if (!(err instanceof LiteralError)) throw err;
    }
  }
  return text;
}

export function docToChoice(task: LmEvalTask, doc: Doc, where: string): string[] {
  const spec = task.docToChoice;
  const field = { file: task.keyFiles.get('doc_to_choice') ?? task.file, field: 'doc_to_choice' };
  if (spec === undefined) throw new EvomergeError('lm_eval.bad_task', 'missing (needed for multiple_choice)', field);
  let v: unknown;
  if (Array.isArray(spec)) v = spec;
  else if (typeof spec === 'string') {
    if (Object.prototype.hasOwnProperty.call(doc, spec)) v = doc[spec];
    else {
      const text = renderTemplate(task, 'doc_to_choice', spec, doc, where);
      try {
        v = parsePythonLiteral(text);
      } catch (err) {
        if (!(err instanceof LiteralError)) throw err;
        throw new EvomergeError('lm_eval.bad_choices', `on ${where}: ${err.message}`, field);
      }
    }
  }
  if (!Array.isArray(v) || v.length === 0)
    throw new EvomergeError(
      'lm_eval.bad_choices',
      `on ${where}: expected a list of choices, got ${JSON.stringify(v)}`,
      field,
    );
  return v.map((c) => String(c));
}

/** The target as text, as lm-eval writes it after a few-shot example (first of a list; a choice by index). */
export function targetText(task: LmEvalTask, doc: Doc, where: string): string {
  const t = docToTarget(task, doc, where);
  if (Array.isArray(t)) return String(t[0]);
  if (typeof t === 'number' && task.docToChoice !== undefined) return docToChoice(task, doc, where)[t] ?? String(t);
  return String(t);
}

/** The question as text (an index into the choices when doc_to_text renders one). */
export function questionText(task: LmEvalTask, doc: Doc, where: string): string {
  const q = docToText(task, doc, where);
  if (typeof q === 'number')
    return task.docToChoice !== undefined ? (docToChoice(task, doc, where)[q] ?? String(q)) : String(q);
  return q;
}
