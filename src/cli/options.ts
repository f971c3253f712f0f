// The options several commands share, defined once so that their spelling, choices and defaults cannot drift
// apart between commands: where the merge arithmetic runs (--device) and which ONNX Runtime provider scores (--ep).
import { Option } from 'commander';
import type { ExecutionProvider } from '../eval/onnx-session.ts';
import { DEVICE_CHOICES } from '../kernel/pick-device.ts';

/** The providers a campaign, a worker or an export scores on; `evomerge eval` also offers cuda. */
const SCORING_PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'webgpu'];

/** `--device <device>`: auto, cpu or gpu (default auto), read by kernel/pick-device.ts selectKernel. */
export function deviceOption(description = 'where the merge arithmetic runs'): Option {
  return new Option('--device <device>', description).choices(DEVICE_CHOICES).default('auto');
}

/** `--ep <provider>`: the ONNX Runtime execution provider (default cpu). */
export function epOption(
  description = 'ONNX Runtime execution provider for scoring',
  providers: readonly ExecutionProvider[] = SCORING_PROVIDERS,
): Option {
  return new Option('--ep <provider>', description).choices(providers).default('cpu');
}

/** `--spin`: ONNX Runtime's intra-op worker threads spin-wait between operators (off by default; EvaluatorOptions.spinWait). */
export function spinOption(): Option {
  return new Option(
    '--spin',
    "let ONNX Runtime's intra-op worker threads spin between operators: faster on idle cores, " +
      'burns CPU while waiting (default off)',
  );
}
