// lm-eval's per-item metrics (api/metrics.py): exact_match as HF evaluate defines it (regexes removed from both
// sides, then case, then punctuation), acc and acc_norm of multiple_choice (argmax of summed log-likelihoods,
// and of log-likelihood per character of the choice), and the perplexities of the loglikelihood types.
import { removeAll } from './python-regex.ts';
import type { MetricSpec } from './task-file.ts';

/** string.punctuation */
const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;

export function exactMatch(spec: MetricSpec, prediction: string, reference: string): boolean {
  let p = prediction;
  let r = reference;
  for (const re of spec.regexesToIgnore) {
    p = removeAll(re, p);
    r = removeAll(re, r);
  }
  if (spec.ignoreCase) {
    p = p.toLowerCase();
    r = r.toLowerCase();
  }
  if (spec.ignorePunctuation) {
    p = p.replace(PUNCTUATION, '');
    r = r.replace(PUNCTUATION, '');
  }
  return p === r;
}

/** np.argmax: the first of equal maxima. */
export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** multiple_choice: acc from the summed log-likelihoods, acc_norm from them divided by each choice's length in
 *  characters (Python len: code points). */
export function choiceHits(
  logliks: readonly number[],
  choices: readonly string[],
  gold: number,
): { acc: boolean; acc_norm: boolean } {
  const norm = logliks.map((l, i) => l / [...choices[i]!].length);
  return { acc: argmax(logliks) === gold, acc_norm: argmax(norm) === gold };
}
