// apply_chat_template: prompts rendered through the chat_template of a tokenizer_config.json (fixtures written
// here: a ChatML template as Qwen's, and a Llama-3 style one that writes the BOS token), few-shot examples as
// user/assistant turns (lm-eval's --apply_chat_template --fewshot_as_multiturn), the description as a system
// turn; special tokens reach the model as their ids.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSuiteFile } from '../../../src/eval/suite.ts';
import { buildPrompts } from '../../../src/eval/lm-eval/run-task.ts';
import { ChatTemplate } from '../../../src/eval/lm-eval/chat-template.ts';
import { HfTokenizer } from '../../../src/eval/tokenizers/hf.ts';
import { Evaluator } from '../../../src/eval/evaluator.ts';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { MGSM_EN, repoRoot, sharedTasks, writeHubData } from '../../fixtures/lm-eval-data.ts';

const CHATML =
  "{%- for message in messages %}\n  {%- if loop.first and message['role'] != 'system' %}\n    {{- " +
  "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}\n  {%- endif %}\n" +
  "  {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\n{%- endfor %}\n{%- " +
  "if add_generation_prompt %}\n  {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";
const LLAMA3 =
  "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' " +
  "+ message['content'] | trim + '<|eot_id|>' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

let tmp: string;
let hub: Record<string, string>;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'evomerge-lm-eval-chat-'));
  hub = writeHubData(path.join(tmp, 'hub'));
  writeFileSync(
    path.join(tmp, 'chatml.json'),
    JSON.stringify({ chat_template: CHATML, eos_token: '<|im_end|>', bos_token: null }),
  );
  writeFileSync(
    path.join(tmp, 'llama3.json'),
    JSON.stringify({ chat_template: LLAMA3, bos_token: { content: '<|begin_of_text|>' }, eos_token: '<|eot_id|>' }),
  );
  // includes are read under the task file's folder or the suite's (task-load.ts): a copy beside them
  cpSync(path.join(sharedTasks, 'mgsm/direct'), path.join(tmp, 'mgsm-direct'), { recursive: true });
  writeFileSync(
    path.join(tmp, 'mgsm_desc.yaml'),
    `include: mgsm-direct/mgsm_direct_en.yaml\ntask: mgsm_desc\ndescription: "Solve the problem.\\n\\n"\n`,
  );
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function suite(chatFile: string, tasks: string, extra = ''): string {
  const file = path.join(tmp, `suite-${path.basename(chatFile)}.yaml`);
  writeFileSync(
    file,
    `graph: ${repoRoot}/models/micro/base/model.onnx\nbase_model: ${repoRoot}/models/micro/base\ntokenizer: ` +
      `byte\napply_chat_template: true\nchat_template: ${chatFile}\n${extra}` +
      `datasets:\n${Object.entries(hub)
        .map(([a, b]) => `  ${a}: ${b}`)
        .join('\n')}\ntasks:\n${tasks}`,
  );
  return file;
}

describe('chat templates', () => {
  it('ChatML: each few-shot example a user and an assistant turn, the question the last user turn', async () => {
    const s = parseSuiteFile(
      suite(
        path.join(tmp, 'chatml.json'),
        `  mgsm:\n    lm_eval: ${sharedTasks}/mgsm/direct/mgsm_direct_en.yaml\n    num_fewshot: 1\n    max_gen_toks: 8\n`,
      ),
    );
    const fit = await buildPrompts(s.tasks[0]!.lmEval!, 'fit');
    expect(fit.prompts[0]).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        `<|im_start|>user\n${MGSM_EN.train[0]!.question}\nAnswer:<|im_end|>\n` +
        '<|im_start|>assistant\n11<|im_end|>\n' +
        `<|im_start|>user\nQuestion: ${fit.docs[0]!.question as string}\nAnswer:<|im_end|>\n` +
        '<|im_start|>assistant\n',
    );
  });

  it("the description is the system turn; a template's bos_token is written once, from tokenizer_config.json", async () => {
    const s = parseSuiteFile(
      suite(
        path.join(tmp, 'llama3.json'),
        `  mgsm:\n    lm_eval: ${path.join(tmp, 'mgsm_desc.yaml')}\n    max_gen_toks: 8\n`,
      ),
    );
    const fit = await buildPrompts(s.tasks[0]!.lmEval!, 'fit');
    expect(fit.prompts[0]).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSolve the problem.<|eot_id|>' +
        `<|start_header_id|>user<|end_header_id|>\n\nQuestion: ${fit.docs[0]!.question as string}\nAnswer:<|eot_id|>` +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it('special tokens in the rendered text become their ids with a Hugging Face tokenizer', () => {
    const tokFile = path.join(tmp, 'tokenizer.json');
    const vocab: Record<string, number> = { a: 0, b: 1, '<unk>': 2, '<|im_start|>': 3, '<|im_end|>': 4 };
    const special = (id: number, content: string) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
    writeFileSync(
      tokFile,
      JSON.stringify({
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: [special(2, '<unk>'), special(3, '<|im_start|>'), special(4, '<|im_end|>')],
        normalizer: null,
        pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
        post_processor: null,
        decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
        model: {
          type: 'BPE',
          dropout: null,
          unk_token: '<unk>',
          continuing_subword_prefix: null,
          end_of_word_suffix: null,
          fuse_unk: false,
          byte_fallback: false,
          vocab,
          merges: [],
        },
      }),
    );
    const text = ChatTemplate.load(path.join(tmp, 'chatml.json')).render([{ role: 'user', content: 'ab' }], true);
    const ids = HfTokenizer.load(tokFile).encode(text);
    expect(ids.filter((i) => i === 3)).toHaveLength(3); // system, user, assistant
    expect(ids.filter((i) => i === 4)).toHaveLength(2);
    expect(ids[0]).toBe(3);
  });

  it('a chat-templated multiple_choice task runs on the zoo', async () => {
    const file = suite(path.join(tmp, 'chatml.json'), `  arc:\n    lm_eval: ${sharedTasks}/arc/arc_easy.yaml\n`);
    const ev = await Evaluator.create({ suite: file, threads: 1 });
    const m = openModelDir(path.join(repoRoot, 'models/micro/base'));
    try {
      const [r] = await ev.evaluate(m.tensors, { split: 'test', withPredictions: true });
      expect(r!.metric).toBe('acc,none');
      expect(r!.n).toBe(2);
      expect(
        [
          ['steam', 'ice'],
          ['a bird', 'a fish', 'a worm', 'a snail'],
        ].map((c, i) => c.includes(r!.predictions![i]!)),
      ).toEqual([true, true]);
    } finally {
      m.close();
      await ev.close();
    }
  });

  it('refuses a tokenizer_config.json without chat_template, naming it', () => {
    writeFileSync(path.join(tmp, 'plain.json'), JSON.stringify({ eos_token: '</s>' }));
    expect(() =>
      parseSuiteFile(suite(path.join(tmp, 'plain.json'), `  arc:\n    lm_eval: ${sharedTasks}/arc/arc_easy.yaml\n`)),
    ).toThrow(`${path.join(tmp, 'plain.json')}: chat_template: no chat_template (apply_chat_template needs one)`);
  });
});
