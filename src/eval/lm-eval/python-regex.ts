// Python `re` patterns (lm-eval's regex filters and regexes_to_ignore) as JavaScript RegExps, and the two calls
// lm-eval makes with them: re.findall and re.sub. The translation covers what differs in the patterns task files
// use: leading inline flags such as `(?s)`, `\A` / `\Z`, `(?P<name>…)` / `(?P=name)`, and `$`, which in Python
// (without MULTILINE) also matches before a final newline. Not translated: Unicode classes (`\d`, `\w` are ASCII
// here, Unicode in Python) and verbose mode (`(?x)`, refused).

/** A pattern Python accepts that this translation does not; the caller names the file and key. */
export class PatternError extends Error {}

const FLAG_MAP: Record<string, string> = { i: 'i', m: 'm', s: 's', a: '', u: '', L: '' };

/** Compiles a Python pattern; `global` adds the g flag (findall, sub). */
export function compilePythonRegex(pattern: string, global = false): RegExp {
  checkBacktracking(pattern);
  let body = pattern;
  let flags = '';
  const lead = /^\(\?([aiLmsux]+)\)/.exec(body);
  if (lead) {
    for (const f of lead[1]!) {
      if (f === 'x') throw new PatternError(`verbose patterns ((?x)) are not supported: ${pattern}`);
      if (!flags.includes(FLAG_MAP[f]!)) flags += FLAG_MAP[f]!;
    }
    body = body.slice(lead[0].length);
  }
  const multiline = flags.includes('m');
  let out = '';
  let inClass = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\') {
      const n = body[i + 1] ?? '';
      i++;
      if (!inClass && n === 'A') out += '(?<![\\s\\S])';
      else if (!inClass && n === 'Z') out += '(?![\\s\\S])';
      else out += `\\${n}`;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // a `]` right after `[` or `[^` is a literal in both dialects
      if (body[i + 1] === '^') out += body[++i]!;
      if (body[i + 1] === ']') out += `\\${body[++i]!}`;
      continue;
    }
    if (c === '(' && body.startsWith('(?P<', i)) {
      out += '(?<';
      i += 3;
      continue;
    }
    if (c === '(' && body.startsWith('(?P=', i)) {
      const end = body.indexOf(')', i);
      out += `\\k<${body.slice(i + 4, end)}>`;
      i = end;
      continue;
    }
    if (c === '(' && /^\(\?[aiLmsux]+[):]/.test(body.slice(i)))
      throw new PatternError(`inline flags are supported only at the start of the pattern: ${pattern}`);
    if (c === '$' && !multiline) {
      out += '(?=\\n?(?![\\s\\S]))';
      continue;
    }
    out += c;
  }
  try {
    return new RegExp(out, flags + (global ? 'g' : ''));
  } catch (err) {
    throw new PatternError(`not a valid pattern: ${pattern} (${(err as Error).message})`);
  }
}

/** re.findall: whole matches without groups, group 1's text with one group, tuples of groups with more. */
export function findAll(re: RegExp, text: string): (string | string[])[] {
  const g = re.global ? re : new RegExp(re.source, `${re.flags}g`);
  const out: (string | string[])[] = [];
  for (const m of text.matchAll(g)) {
    const groups = m.slice(1).map((s) => s ?? '');
    out.push(groups.length === 0 ? m[0] : groups.length === 1 ? groups[0]! : groups);
  }
  return out;
}

/** re.sub(pattern, '', text): every match removed. */
export function removeAll(re: RegExp, text: string): string {
  const g = re.global ? re : new RegExp(re.source, `${re.flags}g`);
  return text.replace(g, '');
}

/** Most unbounded quantifiers (`*`, `+`, `{n,}`) a pattern may hold: adjacent ones backtrack polynomially. */
export const MAX_UNBOUNDED_QUANTIFIERS = 3;

/**
 * Refuses what makes a backtracking engine take exponential time, so that no task file can hang a filter or
 * exact_match: a repeated group (`*`, `+`, `{n,}`, `{n,m}` with m > 1) that holds a variable quantifier or an
 * alternation (`(a+)+`, `(a|ab)*`), a backreference (`\1`, `(?P=name)`) in a pattern with an unbounded quantifier,
 * and more than MAX_UNBOUNDED_QUANTIFIERS unbounded quantifiers (adjacent ones backtrack polynomially). lm-eval's
 * own patterns (gsm8k, bbh, mgsm…) pass.
 */
function checkBacktracking(pattern: string): void {
  const refuse = (why: string): never => {
    throw new PatternError(`${why} (catastrophic backtracking; refused so that no pattern can hang eval): ${pattern}`);
  };
  // per open group: whether it holds a quantifier or an alternation
  const stack: { risky: boolean }[] = [];
  let unboundedCount = 0;
  let backreference = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    let closedRisky = false;
    if (c === '\\') {
      const n = pattern[i + 1] ?? '';
      if (/[1-9]/.test(n) || n === 'k') backreference = true;
      i++;
    } else if (c === '[') {
      // a class: skip to its end (a `]` first is literal)
      i++;
      if (pattern[i] === '^') i++;
      if (pattern[i] === ']') i++;
      while (i < pattern.length && pattern[i] !== ']') i += pattern[i] === '\\' ? 2 : 1;
    } else if (c === '(') {
      if (pattern.startsWith('(?P=', i)) backreference = true;
      stack.push({ risky: false });
    } else if (c === ')') {
      closedRisky = stack.pop()?.risky ?? false;
    } else if (c === '|') {
      if (stack.length > 0) stack[stack.length - 1]!.risky = true;
    }
    // a quantifier after what was just read
    const q = /^(?:[*+?]|\{(\d*)(,?)(\d*)\})/.exec(pattern.slice(i + 1));
    if (q && c !== '(' && c !== '|') {
      const [text, min, comma, max] = q;
      const braces = text.startsWith('{');
      const unbounded = text === '*' || text === '+' || (braces && comma === ',' && max === '');
      // repeats: may run more than once; variable: a choice of lengths (a fixed {3} is none)
      const repeats = unbounded || (braces && Number(comma === ',' ? max : min) > 1);
      const variable = unbounded || (braces && comma === ',' && Number(max) > Number(min || 0));
      if (unbounded && ++unboundedCount > MAX_UNBOUNDED_QUANTIFIERS)
        refuse(`more than ${MAX_UNBOUNDED_QUANTIFIERS} unbounded quantifiers`);
      if (repeats && closedRisky) refuse('a repeated group that holds a quantifier or an alternation');
      if (variable && stack.length > 0) stack[stack.length - 1]!.risky = true;
      i += text.length;
      if (pattern[i + 1] === '?' || pattern[i + 1] === '+') i++; // lazy or possessive
    }
    if (closedRisky && stack.length > 0) stack[stack.length - 1]!.risky = true;
  }
  if (backreference && unboundedCount > 0) refuse('a backreference with an unbounded quantifier');
}
