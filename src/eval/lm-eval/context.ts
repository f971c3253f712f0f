// The prompt of one doc, as lm-eval's Task.fewshot_context builds it. Plain: description + for each example
// (question + target_delimiter + target + fewshot_delimiter) + question. With a chat template, as
// `--apply_chat_template --fewshot_as_multiturn`: the description as a system turn, each example as a user turn
// and an assistant turn, the question as the last user turn, rendered with add_generation_prompt.
import type { ChatMessage } from './chat-template.ts';
import type { Doc } from './dataset.ts';
import { questionText, renderTemplate, targetText } from './doc-render.ts';
import type { LmEvalSettings } from './protocol.ts';

export function buildContext(s: LmEvalSettings, doc: Doc, shots: readonly Doc[], where: string): string {
  const t = s.task;
  const description = t.description ? renderTemplate(t, 'description', t.description, doc, where) : '';
  const question = questionText(t, doc, where);
  const examples = shots.map((ex, k) => ({
    q: questionText(t, ex, `few-shot example ${k}`),
    a: targetText(t, ex, `few-shot example ${k}`),
  }));
  if (s.chatTemplate) {
    const messages: ChatMessage[] = [];
    if (description) messages.push({ role: 'system', content: description });
    for (const ex of examples) messages.push({ role: 'user', content: ex.q }, { role: 'assistant', content: ex.a });
    messages.push({ role: 'user', content: question });
    return s.chatTemplate.render(messages, true);
  }
  let text = description;
  for (const ex of examples) {
    text += ex.q;
    // lm-eval leaves out the delimiters of an example whose target is empty
    if (ex.a !== '') text += t.targetDelimiter + ex.a + t.fewshotDelimiter;
  }
  return text + question;
}
