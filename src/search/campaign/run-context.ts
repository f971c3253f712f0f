// What the search's helper modules (fidelity-loop.ts, final-pick.ts) see of a running campaign: the types the
// campaign loop hands them, kept apart from campaign.ts so that no file imports the loop back.
import type pLimit from 'p-limit';
import type { Store } from '../../store/db.ts';
import type { Solution } from '../optimizers/optimizer.ts';
import type { CampaignSetup } from './campaign-setup.ts';
import type { RecipeDoc } from '../space/recipe-doc.ts';
import type { Score } from '../space/measures.ts';
import type { Split } from '../../eval/split.ts';
import type { CandidateScorer } from '../scoring/scorer.ts';
import type { ObjectiveValue } from '../../gates/objective.ts';
import type { SourceScores } from './verdicts.ts';

/** One asked solution, decoded: its genome, its recipe and the recipe's content hash. */
export interface Ask {
  readonly solution: Solution;
  readonly genome: Record<string, number | string>;
  readonly recipe: RecipeDoc;
  readonly hash: string;
}

/** What the search's helper modules (fidelity-loop.ts, final-pick.ts) need from a running campaign. */
export interface RunContext {
  readonly setup: CampaignSetup;
  readonly store: Store;
  readonly campaignId: number;
  readonly scorer: CandidateScorer;
  readonly limit: ReturnType<typeof pLimit>;
  /** The optimiser reads per-item fit values: they are kept in the store (tell-details.ts). */
  readonly keepFitItems?: boolean;
  readonly signal?: AbortSignal;
  scoreBaselines(split: Split): Promise<void>;
  /** Source name → its recorded scores on a split. */
  baselines(split: Split): Map<string, Score[]>;
  /** The objective of scores on a split with its SE (share terms against the sources on that split). */
  estimate(scores: readonly Score[], split: Split, sources: SourceScores): ObjectiveValue;
}

export interface NewTell {
  generation: number;
  toldCount: number;
  stateJson: string;
}
