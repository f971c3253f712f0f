// The campaign's final pick after the search (selection.ts): without a `selection:` block, or with top_k 0, the
// best kept candidate by fit (rank value); otherwise the sources, the references and the top-k kept candidates by
// fit are scored on the val split (never shown to the optimiser) and the best of those candidates on val is the
// pick. Recorded in the database (final_picks) with what was considered; rerun on resume, it scores only what
// is missing and picks the same.
import { parse } from 'yaml';
import type { RunContext } from './run-context.ts';
import type { Score } from '../space/measures.ts';
import type { RecipeDoc } from '../space/recipe-doc.ts';
import { finalPick, topByFit, type PickEntry } from './selection.ts';
import { fromRecord } from './score-records.ts';

interface Entry extends PickEntry {
  readonly candidateId: number;
  readonly recipeYaml: string;
}

export async function selectFinalPick(ctx: RunContext): Promise<void> {
  const { setup, store, campaignId } = ctx;
  const z = setup.space.selection?.lcbZ ?? 0;
  const topK = setup.space.selection?.topK ?? 0;
  const fitSources = ctx.baselines('fit');
  const kept = store.listCandidates(campaignId, { kind: 'search', status: 'kept' });
  if (kept.length === 0) return;
  const fitEntry = (c: (typeof kept)[number]): Entry => ({
    candidateId: c.candidateId,
    ordinal: c.ordinal!,
    recipeYaml: c.recipeYaml!,
    fit: {
      value: c.objective ?? -Infinity,
      se: ctx.estimate(store.listScores(c.candidateId, 'fit').map(fromRecord), 'fit', fitSources).se,
    },
  });
  const entries = kept.map(fitEntry);
  if (topK === 0) {
    const pick = finalPick(entries, z)!;
    store.saveFinalPick({
      campaignId,
      candidateId: pick.candidateId,
      rule: 'fit',
      detailJson: JSON.stringify({ lcb_z: z, considered: [detail(pick)] }),
    });
    return;
  }
  await ctx.scoreBaselines('val');
  const top = topByFit(entries, topK, z);
  await Promise.all(
    top.map((e) =>
      ctx.limit(async () => {
        if (store.listScores(e.candidateId, 'val').length) return;
        if (ctx.signal?.aborted) return;
        const r = await ctx.scorer.scoreRecipe(
          parse(e.recipeYaml) as RecipeDoc,
          'val',
          setup.measures,
          setup.items?.val,
        );
        store.addScores(
          e.candidateId,
          r.value.map((s) => ({ task: s.task, metric: s.metric, split: 'val', value: s.value, se: s.se, n: s.n })),
        );
      }),
    ),
  );
  if (ctx.signal?.aborted) return;
  const valSources = ctx.baselines('val');
  const withVal: Entry[] = top.map((e) => ({
    ...e,
    val: ctx.estimate(store.listScores(e.candidateId, 'val').map(fromRecord), 'val', valSources),
  }));
  const pick = finalPick(withVal, z)!;
  store.saveFinalPick({
    campaignId,
    candidateId: pick.candidateId,
    rule: 'val',
    detailJson: JSON.stringify({ lcb_z: z, top_k: topK, considered: withVal.map(detail) }),
  });
}

function detail(e: Entry) {
  return { ordinal: e.ordinal, fit: e.fit, ...(e.val ? { val: e.val } : {}) };
}
