// The model's context as a limit on what a task runs: every sequence a task runs must fit it. Past it, positions
// the model never saw give meaningless scores, and a long generation without a stop runs on for minutes; so a
// task is refused up front, naming the suite key or the eval file's line.
import path from 'node:path';
import { EvomergeError } from '../errors.ts';
import type { EvalItem } from './eval-file.ts';
import type { Split, TaskSpec } from './suite.ts';
import type { Tokenizer } from './tokenizers/tokenizer.ts';

/** A model's context in tokens, and where that number comes from (for messages). */
export interface ContextLength {
  readonly tokens: number;
  readonly from: string;
}

/**
 * The context a model was trained for, from its config.json (max_position_embeddings), if it says. With
 * longrope RoPE (Phi-3), original_max_position_embeddings: past it transformers switches to the long factors,
 * which the built graph does not implement, so longer sequences are refused rather than scored wrongly.
 */
export function contextOfConfig(baseDir: string, config: Readonly<Record<string, unknown>>): ContextLength | undefined {
  const rs = config.rope_scaling as Record<string, unknown> | null | undefined;
  const ropeType = rs && typeof rs === 'object' ? (rs.rope_type ?? rs.type) : undefined;
  if (ropeType === 'longrope' || ropeType === 'su') {
    const original = config.original_max_position_embeddings ?? rs!.original_max_position_embeddings;
    const max = config.max_position_embeddings;
    if (Number.isSafeInteger(original) && (original as number) > 0 && !((max as number) < (original as number)))
      return {
        tokens: original as number,
        from: `original_max_position_embeddings in ${path.join(baseDir, 'config.json')}: longrope's short factors`,
      };
  }
  const ctx = config.max_position_embeddings;
  return Number.isSafeInteger(ctx) && (ctx as number) > 0
    ? { tokens: ctx as number, from: `max_position_embeddings in ${path.join(baseDir, 'config.json')}` }
    : undefined;
}

/** Refuses, in one line, the first item of `task` whose sequence (prompt, answer, choices, new tokens) passes `ctx`. */
export function checkTaskFitsContext(
  ctx: ContextLength,
  tokenizer: Tokenizer,
  suiteFile: string,
  task: { spec: TaskSpec; split: Split; metric: string; items: readonly EvalItem[] },
): void {
  const { spec, split, metric, items } = task;
  const why = `the model's context is ${ctx.tokens} tokens (${ctx.from})`;
  if (spec.kind === 'generate' && metric === 'exact_match' && spec.maxNewTokens >= ctx.tokens) {
    throw new EvomergeError(
      'eval.past_context',
      `max_new_tokens ${spec.maxNewTokens} leaves no room for a prompt: ${why}`,
      { file: suiteFile, field: `tasks.${spec.name}.max_new_tokens` },
    );
  }
  for (const it of items) {
    const v = it.values;
    let tokens: number;
    let what: string;
    if (spec.kind === 'loglik') {
      tokens = tokenizer.encode(v.text as string).length;
      what = `the text is ${tokens} tokens`;
    } else if (spec.kind === 'generate') {
      const prompt = tokenizer.encode(v.prompt as string).length;
      const tail =
        metric === 'exact_match'
          ? spec.maxNewTokens
          : tokenizer.encode(`${v.answer as string}${spec.stop[0] ?? ''}`).length;
      tokens = prompt + tail;
      what = `the prompt is ${prompt} tokens, plus ${tail} ${metric === 'exact_match' ? 'new tokens (max_new_tokens)' : 'of answer'}`;
    } else {
      const choices = (v.choices as readonly string[] | undefined) ?? spec.choices ?? [];
      const prompt = tokenizer.encode(v.prompt as string).length;
      tokens = prompt + Math.max(0, ...choices.map((c) => tokenizer.encode(c).length));
      what = `the prompt and its longest choice are ${tokens} tokens`;
    }
    if (tokens > ctx.tokens) {
      throw new EvomergeError(
        'eval.past_context',
        `${what}, past the model's context: ${why}; shorten it or drop the item`,
        {
          file: spec.files[split],
          line: it.line,
          field: spec.kind === 'loglik' ? spec.fields.text : spec.fields.prompt,
        },
      );
    }
  }
}
