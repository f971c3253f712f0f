// The campaign's final pick after the search (selection.ts): without a `selection:` block, or with top_k 0, the
// best kept candidate by fit (rank value); otherwise the sources, the references and the top-k kept candidates by
// fit are scored on the val split (never shown to the optimiser) and the best of those candidates on val is the
// pick. Never worse than naive: the reference merges that clear every gate on fit take part on the same split
// (val, else fit) with the same rank value, and one of them is the pick when no searched candidate beats it
// (`neverWorseThanNaive`). Recorded in the database (final_picks) with what was considered; rerun on resume, it
// scores only what is missing and picks the same.
import { parse } from 'yaml';
import type { RunContext } from './run-context.ts';
import type { RecipeDoc } from '../space/recipe-doc.ts';
import { finalPick, neverWorseThanNaive, topByFit, type PickEntry, type ReferenceEntry } from './selection.ts';
import { fromRecord } from './score-records.ts';
import { judgeGates } from './verdicts.ts';
import { paretoSelection } from './pareto-pick.ts';

interface Entry extends PickEntry {
  readonly candidateId: number;
  readonly recipeYaml: string;
}

interface RefEntry extends ReferenceEntry {
  readonly candidateId: number;
}

export async function selectFinalPick(ctx: RunContext): Promise<void> {
  const { setup, store, campaignId } = ctx;
  const z = setup.space.selection?.lcbZ ?? 0;
  const topK = setup.space.selection?.topK ?? 0;
  const fitSources = ctx.baselines('fit');
  const fitScores = (candidateId: number) => store.listScores(candidateId, 'fit').map(fromRecord);
  const fitOf = (c: { candidateId: number; objective: number | null }) => ({
    value: c.objective ?? -Infinity,
    se: ctx.estimate(fitScores(c.candidateId), 'fit', fitSources).se,
  });
  const kept = store.listCandidates(campaignId, { kind: 'search', status: 'kept' });
  const entries: Entry[] = kept.map((c) => ({
    candidateId: c.candidateId,
    ordinal: c.ordinal!,
    recipeYaml: c.recipeYaml!,
    fit: fitOf(c),
  }));
  // the references, their gates judged on fit as a search candidate's are; of a weight group (one merge per λ),
  // only the member with the best fit objective, as the space defines it (λ chosen on fit) and the report shows it
  const refs: RefEntry[] = chosenOnFit(ctx, store.listCandidates(campaignId, { kind: 'reference' })).map((c) => ({
    candidateId: c.candidateId,
    label: c.label ?? '',
    fit: fitOf(c),
    failedGates: judgeGates(setup.space, setup.suite, fitScores(c.candidateId), fitSources, 'fit')
      .filter((v) => !v.pass)
      .map((v) => v.gate),
  }));
  if (kept.length === 0 && refs.every((r) => r.failedGates.length > 0)) return;
  // Pareto mode: the pick is made among the front's members by the space's rule (pareto-pick.ts)
  const pareto = setup.space.pareto ? paretoSelection(ctx, z) : undefined;
  const front = pareto ? pareto.front(entries) : entries;
  if (topK === 0) {
    const check = neverWorseThanNaive(pareto ? pareto.order(front, 'fit')[0] : finalPick(entries, z), refs, z, 'fit');
    const considered = check.searched ? [detail(check.searched)] : [];
    save(ctx, 'fit', check, { lcb_z: z, considered, ...pareto?.detail(front, check.searched, 'fit') }, refs);
    return;
  }
  await ctx.scoreBaselines('val');
  const top = pareto ? pareto.order(front, 'fit').slice(0, topK) : topByFit(entries, topK, z);
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
  const valOf = (candidateId: number) =>
    ctx.estimate(store.listScores(candidateId, 'val').map(fromRecord), 'val', valSources);
  const withVal: Entry[] = top.map((e) => ({ ...e, val: valOf(e.candidateId) }));
  const refsVal: RefEntry[] = refs.map((r) => ({ ...r, val: valOf(r.candidateId) }));
  const check = neverWorseThanNaive(
    pareto ? pareto.order(withVal, 'val')[0] : finalPick(withVal, z),
    refsVal,
    z,
    'val',
  );
  const paretoDetail = pareto?.detail(front, check.searched, 'val');
  save(ctx, 'val', check, { lcb_z: z, top_k: topK, considered: withVal.map(detail), ...paretoDetail }, refsVal);
}

function save(
  ctx: RunContext,
  rule: 'fit' | 'val',
  check: ReturnType<typeof neverWorseThanNaive<Entry, RefEntry>>,
  base: Record<string, unknown>,
  refs: readonly RefEntry[],
): void {
  const pick = check.pick!;
  ctx.store.saveFinalPick({
    campaignId: ctx.campaignId,
    candidateId: pick.candidateId,
    rule,
    detailJson: JSON.stringify({
      ...base,
      // never worse than naive: every reference with its estimates and failed gates, the best searched candidate
      // and whether the best reference that clears every gate was picked instead
      references: refs.map((r) => ({
        label: r.label,
        fit: r.fit,
        ...(r.val ? { val: r.val } : {}),
        failed_gates: r.failedGates,
      })),
      searched: check.searched?.ordinal ?? null,
      ...(check.reference ? { reference: check.reference.label } : {}),
      by_reference: check.byReference,
    }),
  });
}

function chosenOnFit<C extends { label: string | null; objective: number | null }>(ctx: RunContext, refs: C[]): C[] {
  const group = (c: C) => ctx.setup.space.references.find((r) => r.name === c.label)?.group;
  return refs.filter((c) => {
    const g = group(c);
    if (g === undefined) return true;
    const members = refs.filter((x) => group(x) === g);
    return members.reduce((a, b) => ((b.objective ?? -Infinity) > (a.objective ?? -Infinity) ? b : a)) === c;
  });
}

function detail(e: Entry) {
  return { ordinal: e.ordinal, fit: e.fit, ...(e.val ? { val: e.val } : {}) };
}
