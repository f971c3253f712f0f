// The final pick of a Pareto campaign (final-pick.ts calls it): the front of the kept candidates on fit (each
// objective term's value − lcb_z·SE, gates/pareto.ts), ordered by the space's `pareto_pick` rule; the top_k of
// that order are scored on val and the rule picks among them there (on fit without a val pick). The rule:
// weighted (today's weighted objective), knee (farthest beyond the hyperplane through the extremes) or maximin
// (the best worst normalised task). Never worse than naive then applies as in a weighted campaign.
import { lcb, orderByRule, paretoFront, pickRuleSentence } from '../../gates/pareto.ts';
import { termKey, termValues } from '../../gates/objective.ts';
import type { Split } from '../../eval/split.ts';
import { ownMetric } from '../space/measures.ts';
import type { RunContext } from './run-context.ts';
import { rankValue, type PickEntry } from './selection.ts';
import { recordedScores } from './score-records.ts';

type Entry = PickEntry & { readonly candidateId: number };

export interface ParetoSelection {
  /** The kept candidates on the front on fit, in the order given. */
  front<T extends Entry>(entries: readonly T[]): T[];
  /** Entries best first by the rule on `split` (val needs every entry's val scores). */
  order<T extends Entry>(entries: readonly T[], split: 'fit' | 'val'): T[];
  /** What final_picks.detail_json records of the front and the rule. */
  detail(front: readonly Entry[], searched: Entry | undefined, split: 'fit' | 'val'): Record<string, unknown>;
}

export function paretoSelection(ctx: RunContext, z: number): ParetoSelection {
  const { setup, store } = ctx;
  const rule = setup.space.pareto!.pick;
  const own = (t: string) => ownMetric(setup.suite, t);
  const sources = new Map<Split, ReturnType<RunContext['baselines']>>();
  const vector = (candidateId: number, split: Split): number[] => {
    if (!sources.has(split)) sources.set(split, ctx.baselines(split));
    const scores = recordedScores(store, candidateId, split);
    return termValues(setup.space.objective, own, scores, sources.get(split), split).map((t) => lcb(t, z));
  };
  return {
    front(entries) {
      const front = paretoFront(entries.map((e) => vector(e.candidateId, 'fit')));
      return front.map((i) => entries[i]!);
    },
    order(entries, split) {
      const members = entries.map((e) => ({
        e,
        ordinal: e.ordinal,
        f: vector(e.candidateId, split),
        weighted: rankValue((split === 'val' ? e.val : e.fit) ?? { value: -Infinity, se: NaN }, z),
      }));
      return orderByRule(members, rule).map((m) => m.e);
    },
    detail(front, searched, split) {
      return {
        pareto: {
          rule,
          objectives: setup.space.objective.map((t) => termKey(t, own)),
          front: front.map((e) => e.ordinal),
          ...(searched
            ? { chosen: searched.ordinal, sentence: pickRuleSentence(rule, searched.ordinal, split, z) }
            : {}),
        },
      };
    },
  };
}
