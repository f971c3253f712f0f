// --device and --ep are defined once (src/cli/options.ts); each command keeps its own description, choices and
// default, as its --help has always shown them.
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../../src/cli/main.ts';

function option(command: string, flag: string) {
  const c = buildProgram().commands.find((x) => x.name() === command)!;
  const o = c.options.find((x) => x.long === flag)!;
  return { description: o.description, choices: o.argChoices, default: o.defaultValue };
}

describe('shared command options', () => {
  it('--device: auto, cpu or gpu, default auto, in every command that merges', () => {
    for (const cmd of ['search', 'export', 'worker'])
      expect(option(cmd, '--device')).toEqual({
        description: 'where the merge arithmetic runs',
        choices: ['auto', 'cpu', 'gpu'],
        default: 'auto',
      });
    expect(option('merge', '--device').description).toBe('where the arithmetic runs');
  });

  it('--ep: cpu or webgpu for campaign scoring, cuda too for evomerge eval, default cpu', () => {
    expect(option('search', '--ep').choices).toEqual(['cpu', 'webgpu']);
    expect(option('worker', '--ep').choices).toEqual(['cpu', 'webgpu']);
    expect(option('export', '--ep')).toEqual({
      description: 'ONNX Runtime execution provider for test scoring',
      choices: ['cpu', 'webgpu'],
      default: 'cpu',
    });
    expect(option('eval', '--ep')).toEqual({
      description: 'ONNX Runtime execution provider',
      choices: ['cpu', 'webgpu', 'cuda'],
      default: 'cpu',
    });
  });
});
