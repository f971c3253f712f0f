// `evomerge inspect <model-dir> [--json]`: prints what checkpoint/inspect.ts reports, as a table or JSON.
import type { Command } from 'commander';
import { inspectModel, type ModelSummary } from '../checkpoint/inspect.ts';

export function registerInspectCommand(program: Command): void {
  program
    .command('inspect')
    .description('summarise a Hugging Face model folder: tensors, parameters, dtypes, layers, bytes')
    .argument('<model-dir>', 'folder with config.json and model.safetensors (or an index of shards)')
    .option('--json', 'print the summary as JSON')
    .action((dir: string, opts: { json?: boolean }) => {
      const summary = inspectModel(dir);
      process.stdout.write(opts.json ? JSON.stringify(summary, null, 2) + '\n' : formatSummary(summary));
    });
}

const int = (n: number): string => n.toLocaleString('en-US');

function formatSummary(s: ModelSummary): string {
  const dtypes = (Object.entries(s.dtypes) as [string, number][])
    .filter(([, n]) => n > 0)
    .map(([d, n]) => `${d} ×${n}`)
    .join(', ');
  const rows: [string, string][] = [
    ['tensors', int(s.tensorCount)],
    ['parameters', int(s.parameterCount)],
    ['dtypes', dtypes || '—'],
    ['layers', int(s.layerCount)],
    ['tensor bytes', `${int(s.totalBytes)} (${(s.totalBytes / 1e6).toFixed(2)} MB)`],
    ['files', int(s.shards)],
  ];
  if (s.modelType !== undefined) rows.push(['model type', s.modelType]);
  if (s.torchDtype !== undefined) rows.push(['torch_dtype', s.torchDtype]);
  return `${s.dir}\n` + rows.map(([k, v]) => `  ${k.padEnd(13)}${v}\n`).join('');
}
