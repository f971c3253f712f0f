// lm-eval's filter pipelines (filters/extraction.py, filters/transformation.py, filters/selection.py) on one
// item's responses: each pipeline turns the list of generations into the single string its metric scores.
import type { FilterPipeline, FilterStep } from './task-file.ts';
import { findAll } from './python-regex.ts';

/** Python's str.strip / lstrip: the characters str.isspace() accepts. */
const PY_SPACE = '[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const STRIP = new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, 'gu');
const LSTRIP = new RegExp(`^${PY_SPACE}+`, 'u');

export function applyStep(step: FilterStep, responses: readonly string[]): string[] {
  switch (step.function) {
    case 'take_first':
      return responses.slice(0, 1);
    case 'remove_whitespace':
      return responses.map((r) => r.replace(LSTRIP, ''));
    case 'lowercase':
      return responses.map((r) => r.toLowerCase());
    case 'uppercase':
      return responses.map((r) => r.toUpperCase());
    case 'regex':
      return responses.map((r) => {
        // RegexFilter: re.findall, the group_select-th match (Python indexing: −1 is the last); a match of
        // several groups gives its first non-empty group; stripped; no match gives the fallback.
        const matches = findAll(step.pattern, r);
        if (matches.length === 0) return step.fallback;
        const i = step.groupSelect < 0 ? matches.length + step.groupSelect : step.groupSelect;
        const m = matches[i];
        if (m === undefined) return step.fallback;
        if (Array.isArray(m)) {
          const first = m.find((g) => g !== '');
          return first === undefined ? step.fallback : first.replace(STRIP, '');
        }
        return (m as string).replace(STRIP, '');
      });
  }
}

/** Runs a pipeline on one item's responses; the first remaining response is what the metric sees. */
export function applyPipeline(pipeline: FilterPipeline, responses: readonly string[]): string {
  let out = [...responses];
  for (const step of pipeline.steps) out = applyStep(step, out);
  return out[0] ?? '';
}
