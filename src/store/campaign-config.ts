// The campaign's config as campaigns.config_json holds it, and its one reader. It is the search space the
// campaign ran (search/campaign/campaign-setup.ts writes it) less what does not decide the results (budget,
// workers, the file's path), with what the report needs without the suite file. Report, HTML report and
// export read it through here, so they agree on one shape.

import type { Measure } from '../search/space/measures.ts';
import type { SearchSpace } from '../search/space/space.ts';
import type { CampaignRecord } from './records.ts';

export type StoredCampaignConfig = Omit<SearchSpace, 'file' | 'budget' | 'workers'> & {
  /** Each measured task's own metric, as the suite said when the campaign started. */
  readonly ownMetrics: Readonly<Record<string, string>>;
  readonly measures: Measure[];
  /** lm-eval tasks: how fit and test docs and few-shot examples were chosen, described key by key. */
  readonly lmEvalProtocols?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** A selection campaign's seeded partition of fit items into fit and val, item indices per task. */
  readonly items?: {
    readonly fit: Readonly<Record<string, number[]>>;
    readonly val: Readonly<Record<string, number[]>>;
  };
};

/** The stored config of a campaign. Written by this program as JSON, so it is parsed, not validated: a
 *  database edited by hand fails where a field is read. */
export function parseCampaignConfig(campaign: Pick<CampaignRecord, 'configJson'>): StoredCampaignConfig {
  return JSON.parse(campaign.configJson) as StoredCampaignConfig;
}
