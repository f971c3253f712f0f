// The campaign's config as campaigns.config_json holds it, and its one reader. It is the search space the
// campaign ran (search/campaign/campaign-setup.ts writes it) less what does not decide the results (budget,
// workers, the file's path), with what the report needs without the suite file. Report, HTML report and
// export read it through here. The store imports nothing from search, so this names the fields read back;
// export, which needs the whole space, takes the rest as written.

import type { CampaignRecord } from './records.ts';

export interface StoredModel {
  readonly name: string;
  /** Absolute folder path. */
  readonly path: string;
}

export interface StoredCampaignConfig {
  readonly name: string;
  readonly optimizer: string;
  readonly populationSize?: number;
  readonly seed: number;
  /** Absolute path of the eval suite YAML. */
  readonly suite: string;
  readonly evalLimit?: number;
  readonly baseModel: StoredModel;
  readonly models: readonly StoredModel[];
  readonly genome?: {
    readonly layerGroups?: number | string;
    readonly filters?: readonly string[];
    readonly methods?: readonly string[];
  };
  readonly dataFlow?: {
    readonly repeats: number;
    readonly scales: { readonly min: number; readonly max: number };
    readonly scaleModel?: string;
  };
  readonly objective: readonly { task: string; metric?: string; weight: number; shareOf?: string }[];
  readonly references: readonly { name: string; group?: string }[];
  /** Each measured task's own metric, as the suite said when the campaign started. */
  readonly ownMetrics: Record<string, string>;
  readonly measures: { task: string; metric: string }[];
  /** lm-eval tasks: how fit and test docs and few-shot examples were chosen, described key by key. */
  readonly lmEvalProtocols?: Record<string, Record<string, string>>;
  /** The space's selection block (lcb_z ranks fronts and picks too). */
  readonly selection?: { readonly lcbZ?: number };
  /** objective_mode: pareto, with its pick rule (absent: weighted). */
  readonly pareto?: { readonly pick: string };
}

/** The stored config of a campaign. Written by this program as JSON, so it is parsed, not validated: a
 *  database edited by hand fails where a field is read. */
export function parseCampaignConfig(campaign: Pick<CampaignRecord, 'configJson'>): StoredCampaignConfig {
  return JSON.parse(campaign.configJson) as StoredCampaignConfig;
}
