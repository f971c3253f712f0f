// Never worse than naive, as the report says it: one sentence on the final pick against the best reference merge
// that clears every gate, read from the recorded pick's detail (search/campaign/final-pick.ts writes it).
import type { Store } from '../store/db.ts';
import type { CandidateRecord } from '../store/records.ts';

/**
 * Never worse than naive, in one sentence, from the recorded pick's detail (search/campaign/final-pick.ts): the
 * reference merge picked because no searched candidate beat it by its lower confidence bound, or the searched pick
 * that beat the best reference clearing every gate. Undefined for a pick recorded without references.
 */
export function pickSentence(store: Store, campaignId: number, pick: CandidateRecord | undefined): string | undefined {
  const rec = store.finalPick(campaignId);
  if (!rec || !pick) return undefined;
  type E = { value: number | null; se: number | null };
  const d = JSON.parse(rec.detailJson) as {
    lcb_z?: number;
    considered?: { ordinal: number; fit: E; val?: E }[];
    references?: { label: string; fit: E; val?: E; failed_gates: string[] }[];
    searched?: number | null;
    reference?: string;
    by_reference?: boolean;
  };
  if (!d.references?.length) return undefined;
  const split = rec.rule === 'val' ? 'val' : 'fit';
  const z = d.lcb_z ?? 0;
  const lcb = (e: { fit: E; val?: E } | undefined) => {
    const x = split === 'val' ? e?.val : e?.fit;
    if (!x || x.value === null) return '—';
    return (x.value - (z > 0 && x.se !== null ? z * x.se : 0)).toFixed(4);
  };
  const ref = d.references.find((r) => r.label === d.reference);
  const searched = d.considered?.find((c) => c.ordinal === d.searched);
  const bound = `value − ${z}·SE`;
  const none = '; no searched candidate cleared every gate';
  if (!ref) return `No reference merge cleared every gate on fit, so none could be the pick.`;
  if (d.by_reference)
    return (
      `No searched candidate beat ${ref.label} on ${split} by its lower confidence bound: the pick is the reference ` +
      `merge ${ref.label} (${bound}: ${lcb(ref)}` +
      `${searched ? ` against ${lcb(searched)} for the best searched candidate #${searched.ordinal}` : none}).`
    );
  return (
    `The pick #${pick.ordinal} beat the best reference merge that clears every gate, ${ref.label}, on ${split} by ` +
    `its lower confidence bound (${bound}: ${lcb(searched)} against ${lcb(ref)}).`
  );
}
