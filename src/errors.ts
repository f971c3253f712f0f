// The one error type of evomerge: a stable dotted code plus a one-line message naming the file and field.
// Only src/cli/main.ts catches it, prints it and sets the exit code.

export interface ErrorPlace {
  /** The file the bad input came from (a recipe, a checkpoint, an eval set, a database). */
  file?: string;
  /** The key, tensor or column at fault, e.g. `models[1].parameters.densty` or `tensor "lm_head.weight"`. */
  field?: string;
  /** 1-based line number, for line-oriented files (JSONL). */
  line?: number;
}

/** A user-facing failure. `message` is the whole line: `<file>[:<line>]: <field>: <what is wrong>`. */
export class EvomergeError extends Error {
  readonly code: string;
  readonly file?: string;
  readonly field?: string;
  readonly line?: number;
  /** Exit status the CLI uses: 2 for usage errors, 1 otherwise. */
  readonly exitCode: number;

  constructor(code: string, what: string, place: ErrorPlace = {}, exitCode = 1) {
    super(formatErrorLine(what, place));
    this.name = 'EvomergeError';
    this.code = code;
    this.file = place.file;
    this.field = place.field;
    this.line = place.line;
    this.exitCode = exitCode;
  }
}

/** `<file>[:<line>]: <field>: <what>` with the absent parts left out. */
export function formatErrorLine(what: string, place: ErrorPlace): string {
  let head = '';
  if (place.file !== undefined) head += place.file + (place.line !== undefined ? `:${place.line}` : '') + ': ';
  if (place.field !== undefined) head += place.field + ': ';
  return head + what;
}

/** Internal invariant: a failure here is a bug in evomerge, never bad input. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new EvomergeError('internal', `${message} (this is a bug in evomerge)`);
}

/** Levenshtein distance between two strings: the measure behind every "did you mean" hint on a misspelled key. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}
