// Jinja for lm-eval task files and chat templates, through @huggingface/jinja (the engine of transformers.js).
// lm-eval renders doc_to_text/target/choice with jinja2's StrictUndefined and without trim_blocks; chat templates
// are rendered as transformers does (trim_blocks, lstrip_blocks). Two gaps of the engine are closed here:
// printing an undefined name is an error (StrictUndefined), and lists have Python's .index() and .count()
// (arc_easy's `choices.label.index(answerKey)`).
import { Environment, Interpreter, parse, tokenize } from '@huggingface/jinja';

/** A template that failed to parse or render; the caller names the file and key. */
export class TemplateError extends Error {}

type Program = ReturnType<typeof parse>;
interface RuntimeValue {
  type: string;
  value: unknown;
}
interface AstNode {
  type: string;
  value?: unknown;
  filter?: { type: string; value?: unknown; callee?: { value?: unknown } };
}
/** The interpreter's evaluation hooks (private in its typings, stable in its source). */
interface InterpreterHooks {
  run(program: Program): RuntimeValue;
  evaluate(node: AstNode | undefined, env: Environment): RuntimeValue;
  renderBlock(statements: AstNode[], env: Environment): string;
  evaluateIdentifier(node: AstNode, env: Environment): RuntimeValue;
  evaluateTestExpression(node: AstNode, env: Environment): RuntimeValue;
  evaluateFilterExpression(node: AstNode, env: Environment): RuntimeValue;
}
const HookedInterpreter = Interpreter as unknown as new (env: Environment) => InterpreterHooks;

/** Most evaluation steps (expressions and block statements, loop iterations included) one render may take. */
export const MAX_TEMPLATE_STEPS = 200_000;
/** Most characters one render may produce (its output, and any string it computes on the way). */
export const MAX_TEMPLATE_CHARS = 1_000_000;
/** Longest list range() may make. */
const MAX_RANGE = 100_000;

/** Bounds a render's time and memory, so that no template (nested loops, doubling strings) can hang eval. */
class BoundedInterpreter extends HookedInterpreter {
  private steps = 0;
  private step(): void {
    if (++this.steps > MAX_TEMPLATE_STEPS)
      throw new TemplateError(`the template takes more than ${MAX_TEMPLATE_STEPS} steps to render (refused)`);
  }
  private size(n: number): void {
    if (n > MAX_TEMPLATE_CHARS)
      throw new TemplateError(`the template makes a text of more than ${MAX_TEMPLATE_CHARS} characters (refused)`);
  }
  override evaluate(node: AstNode | undefined, env: Environment): RuntimeValue {
    this.step();
    const v = super.evaluate(node, env);
    if (typeof v.value === 'string') this.size(v.value.length);
    else if (Array.isArray(v.value)) this.size(v.value.length);
    return v;
  }
  override renderBlock(statements: AstNode[], env: Environment): string {
    this.step();
    const out = super.renderBlock(statements, env);
    this.size(out.length);
    return out;
  }
}

/** Python's range(), refused past MAX_RANGE items before any list is made. */
function boundedRange(start: number, stop?: number, step = 1): number[] {
  const [a, b] = stop === undefined ? [0, start] : [start, stop];
  if (step === 0) throw new TemplateError('range() step must not be zero');
  const n = Math.max(0, Math.ceil((b - a) / step));
  if (!(n <= MAX_RANGE)) throw new TemplateError(`range() of ${n} items (more than ${MAX_RANGE}, refused)`);
  return Array.from({ length: n }, (_, i) => a + i * step);
}

/** jinja2.StrictUndefined: an undefined name may be tested (`is defined`) or defaulted, never used. */
class StrictInterpreter extends BoundedInterpreter {
  private guarded = 0;
  override evaluateIdentifier(node: AstNode, env: Environment): RuntimeValue {
    const v = super.evaluateIdentifier(node, env);
    if (v.type === 'UndefinedValue' && this.guarded === 0)
      throw new TemplateError(`'${String(node.value)}' is undefined`);
    return v;
  }
  override evaluateTestExpression(node: AstNode, env: Environment): RuntimeValue {
    this.guarded++;
    try {
      return super.evaluateTestExpression(node, env);
    } finally {
      this.guarded--;
    }
  }
  override evaluateFilterExpression(node: AstNode, env: Environment): RuntimeValue {
    const name = node.filter?.type === 'Identifier' ? node.filter.value : node.filter?.callee?.value;
    const guard = name === 'default' || name === 'd';
    if (guard) this.guarded++;
    try {
      return super.evaluateFilterExpression(node, env);
    } finally {
      if (guard) this.guarded--;
    }
  }
}

addListMethods();

export interface TemplateOptions {
  /** Chat templates: transformers renders them with trim_blocks and lstrip_blocks. lm-eval does not. */
  readonly chat?: boolean;
  /** Names of the doc's fields are required (StrictUndefined); chat templates read optional ones. */
  readonly strict?: boolean;
}

/** A parsed template; `render` takes a plain JS context (strings, numbers, lists, objects, null). */
export class JinjaTemplate {
  private readonly program: Program;

  constructor(
    readonly source: string,
    private readonly options: TemplateOptions = {},
  ) {
    try {
      const chat = options.chat === true;
      // the engine drops one trailing newline as jinja2 does by default; lm-eval keeps it (keep_trailing_newline)
      const text = !chat && source.endsWith('\n') ? `${source}\n` : source;
      this.program = parse(tokenize(text, { lstrip_blocks: chat, trim_blocks: chat }));
    } catch (err) {
      throw new TemplateError(describe(err));
    }
  }

  render(context: Readonly<Record<string, unknown>>): string {
    const env = new Environment();
    // jinja2's literals in both spellings, and Python's
    for (const [k, v] of [
      ['true', true],
      ['false', false],
      ['none', null],
      ['True', true],
      ['False', false],
      ['None', null],
    ] as const)
      env.set(k, v);
    env.set('range', boundedRange);
    env.set('raise_exception', (msg: unknown) => {
      throw new TemplateError(`raise_exception: ${String(msg)}`);
    });
    for (const [k, v] of Object.entries(context))
      if (!['true', 'false', 'none', 'True', 'False', 'None'].includes(k)) env.set(k, v ?? null);
    const interpreter = this.options.strict === false ? new BoundedInterpreter(env) : new StrictInterpreter(env);
    try {
      const out = interpreter.run(this.program);
      return String(out.value);
    } catch (err) {
      throw new TemplateError(describe(err));
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof TemplateError) return err.message;
  const msg = err instanceof Error ? err.message : String(err);
  // the engine's parser reports a truncated template as a JS property error
  return /Cannot read properties of undefined/.test(msg)
    ? 'the template ends early (an unclosed tag or expression)'
    : msg;
}

/** Adds Python's list.index(x) and list.count(x) to the engine's lists (it has only `length`). */
function addListMethods(): void {
  const probe = new Environment();
  probe.set('list', []);
  probe.set('int', 0);
  const list = probe.lookupVariable('list') as unknown as object;
  const ArrayProto = Object.getPrototypeOf(list) as object;
  const FunctionValue = (
    probe.lookupVariable('namespace') as unknown as { constructor: new (fn: unknown) => RuntimeValue }
  ).constructor;
  const IntegerValue = (probe.lookupVariable('int') as unknown as { constructor: new (n: number) => RuntimeValue })
    .constructor;
  const desc = Object.getOwnPropertyDescriptor(ArrayProto, 'builtins');
  if (!desc?.get || (ArrayProto as { __evomergeListMethods?: boolean }).__evomergeListMethods) return;
  const original = desc.get;
  Object.defineProperty(ArrayProto, 'builtins', {
    configurable: true,
    get(this: { value: RuntimeValue[] }) {
      const map = original.call(this) as Map<string, RuntimeValue>;
      const items = this.value;
      const same = (a: RuntimeValue, b: RuntimeValue) =>
        a.value === b.value && (a.type === b.type || (typeof a.value === 'number' && typeof b.value === 'number'));
      if (!map.has('index')) {
        map.set(
          'index',
          new FunctionValue(([x]: RuntimeValue[]) => {
            const i = items.findIndex((v) => x !== undefined && same(v, x));
            if (i < 0) throw new TemplateError(`${x ? JSON.stringify(x.value) : 'nothing'} is not in list`);
            return new IntegerValue(i);
          }),
        );
        map.set(
          'count',
          new FunctionValue(
            ([x]: RuntimeValue[]) => new IntegerValue(items.filter((v) => x !== undefined && same(v, x)).length),
          ),
        );
      }
      return map;
    },
  });
  Object.defineProperty(ArrayProto, '__evomergeListMethods', { value: true });
}
