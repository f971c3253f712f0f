// Python's ast.literal_eval for what lm-eval feeds it: a rendered doc_to_choice (a list of strings) or
// doc_to_target (an index, a list). Accepts lists, tuples, strings in either quote with backslash escapes,
// integers, floats, True/False/None — and the JSON spelling @huggingface/jinja gives a printed list.

export class LiteralError extends Error {}

export function parsePythonLiteral(text: string): unknown {
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const fail = (what: string): never => {
    throw new LiteralError(`not a Python literal (${what} at character ${i + 1}): ${text}`);
  };
  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === '[' || c === '(') {
      const close = c === '[' ? ']' : ')';
      i++;
      const items: unknown[] = [];
      ws();
      while (text[i] !== close) {
        items.push(value());
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== close) fail(`expected , or ${close}`);
        ws();
        if (i >= text.length) fail('unclosed list');
      }
      i++;
      return items;
    }
    if (c === '"' || c === "'") {
      i++;
      let s = '';
      while (text[i] !== c) {
        if (i >= text.length) fail('unclosed string');
        if (text[i] === '\\') {
          const e = text[++i]!;
          const simple: Record<string, string> = {
            n: '\n',
            t: '\t',
            r: '\r',
            '\\': '\\',
            "'": "'",
            '"': '"',
            '0': '\0',
            '/': '/',
          };
          if (e in simple) s += simple[e];
          else if (e === 'u' || e === 'x') {
            const len = e === 'u' ? 4 : 2;
            s += String.fromCharCode(parseInt(text.slice(i + 1, i + 1 + len), 16));
            i += len;
          } else s += `\\${e}`;
          i++;
        } else s += text[i++];
      }
      i++;
      return s;
    }
    const word = /^(True|False|None|true|false|null|-?\d+(\.\d*)?([eE][-+]?\d+)?)/.exec(text.slice(i));
    if (!word) return fail('unexpected text');
    i += word[0].length;
    if (word[0] === 'True' || word[0] === 'true') return true;
    if (word[0] === 'False' || word[0] === 'false') return false;
    if (word[0] === 'None' || word[0] === 'null') return null;
    return Number(word[0]);
  };
  const v = value();
  ws();
  if (i < text.length) fail('trailing text');
  return v;
}
