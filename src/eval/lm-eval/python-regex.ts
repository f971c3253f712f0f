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
