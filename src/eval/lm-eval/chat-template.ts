// A model's chat template: the `chat_template` of its tokenizer_config.json, rendered as transformers'
// apply_chat_template does (messages, add_generation_prompt, the special tokens as strings). The rendered text
// carries its special tokens (BOS included, when the template writes it); the tokenizer turns them into their ids.
import { readFileSync } from 'node:fs';
import { EvomergeError } from '../../errors.ts';
import { JinjaTemplate, TemplateError } from './jinja.ts';

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

export class ChatTemplate {
  private constructor(
    readonly file: string,
    private readonly template: JinjaTemplate,
    private readonly specialTokens: Readonly<Record<string, string>>,
  ) {}

  /** Reads `chat_template` (a string, or a list of {name, template} whose `default` is taken) from a tokenizer_config.json. */
  static load(file: string): ChatTemplate {
    let config: Record<string, unknown>;
    try {
      config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new EvomergeError(
        'lm_eval.bad_chat_template',
        (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? "tokenizer_config.json not found (apply_chat_template needs the base model's)"
          : `not valid JSON: ${(err as Error).message}`,
        { file },
      );
    }
    let source = config.chat_template;
    if (Array.isArray(source))
      source = (source as { name?: unknown; template?: unknown }[]).find((t) => t.name === 'default')?.template;
    if (typeof source !== 'string' || source === '')
      throw new EvomergeError('lm_eval.bad_chat_template', 'no chat_template (apply_chat_template needs one)', {
        file,
        field: 'chat_template',
      });
    const tokens: Record<string, string> = {};
    for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
      const v = config[k];
      const text =
        typeof v === 'string'
          ? v
          : typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string'
            ? (v as { content: string }).content
            : undefined;
      if (text !== undefined) tokens[k] = text;
    }
    let template: JinjaTemplate;
    try {
      template = new JinjaTemplate(source, { chat: true, strict: false });
    } catch (err) {
      if (err instanceof TemplateError)
        throw new EvomergeError('lm_eval.bad_chat_template', `Jinja error in the chat template: ${err.message}`, {
          file,
          field: 'chat_template',
        });
      throw err;
    }
    return new ChatTemplate(file, template, tokens);
  }

  render(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
    try {
      return this.template.render({
        ...this.specialTokens,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (err) {
      if (err instanceof TemplateError)
        throw new EvomergeError('lm_eval.bad_chat_template', `the chat template failed: ${err.message}`, {
          file: this.file,
          field: 'chat_template',
        });
      throw err;
    }
  }
}
