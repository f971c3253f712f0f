// The store's record types: one interface per table row, camelCase, JSON columns kept as text (the caller
// parses them). Types only; the store makes no decisions about what the values mean.
import type { Estimate } from '../estimate.ts';

/** Candidate life cycle (a closed union, as optuna's TrialState). */
export const candidateStatuses = ['pending', 'merged', 'evaluated', 'kept', 'rejected', 'failed'] as const;
export type CandidateStatus = (typeof candidateStatuses)[number];

/** True for statuses that end a candidate: kept, rejected, failed (optuna `TrialState.is_finished`). */
export function isFinished(status: CandidateStatus): boolean {
  return status === 'kept' || status === 'rejected' || status === 'failed';
}

/** 'search' = asked by the optimiser; 'source' = an input model; 'reference' = an un-optimised merge. */
export const candidateKinds = ['search', 'source', 'reference'] as const;
export type CandidateKind = (typeof candidateKinds)[number];

export interface CampaignRecord {
  campaignId: number;
  name: string;
  configJson: string;
  configHash: string;
  seed: number;
  versionsJson: string;
  device: string;
  createdAt: string;
}

export type NewCampaign = Omit<CampaignRecord, 'campaignId' | 'createdAt'> & { createdAt?: string };

export interface CandidateRecord {
  candidateId: number;
  campaignId: number;
  kind: CandidateKind;
  /** Human name for sources and references (e.g. "expert-math", "ties density 0.5"); null for search. */
  label: string | null;
  /** Ask order within the campaign (search candidates only; null otherwise). */
  ordinal: number | null;
  generation: number | null;
  genomeJson: string | null;
  recipeYaml: string | null;
  contentHash: string;
  status: CandidateStatus;
  /** The fit objective (maximised); null until set; NaN/±Inf round-trip exactly. */
  objective: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  mergeMs: number | null;
  evalMs: number | null;
  createdAt: string;
  finishedAt: string | null;
}

export interface NewCandidate {
  campaignId: number;
  kind: CandidateKind;
  label?: string | null;
  ordinal?: number | null;
  generation?: number | null;
  genomeJson?: string | null;
  recipeYaml?: string | null;
  contentHash: string;
  status?: CandidateStatus;
  createdAt?: string;
}

/** The outcome of one candidate, written with its scores, verdicts and (optionally) the optimiser state. */
export interface CandidateOutcome {
  status: CandidateStatus;
  objective?: number | null;
  errorCode?: string | null;
  errorMessage?: string | null;
  mergeMs?: number | null;
  evalMs?: number | null;
  /** Defaults to now for finished statuses, null otherwise. */
  finishedAt?: string | null;
}

/** A score with its standard error over n items; an unknown (NaN) SE is stored as NULL and read back as NaN. */
export interface ScoreRecord extends Estimate {
  candidateId: number;
  task: string;
  metric: string;
  /** 'fit' or 'test' by convention; any string is stored. */
  split: string;
}

export type NewScore = Omit<ScoreRecord, 'candidateId'>;

export interface GateVerdictRecord {
  candidateId: number;
  gate: string;
  kind: string;
  task: string;
  metric: string;
  split: string;
  value: number;
  threshold: number;
  pass: boolean;
}

export type NewGateVerdict = Omit<GateVerdictRecord, 'candidateId'>;

export interface OptimizerStateRecord {
  campaignId: number;
  generation: number;
  /** Results told to the optimiser over the whole campaign when this state was taken. */
  toldCount: number;
  stateJson: string;
  createdAt: string;
}

export type NewOptimizerState = Omit<OptimizerStateRecord, 'campaignId' | 'createdAt'> & { createdAt?: string };

/** Per-item pseudo-values of one score (test split; fit and fit@r for an optimiser that reads them), in file order. */
export interface ItemValuesRecord {
  candidateId: number;
  task: string;
  metric: string;
  split: string;
  values: readonly number[];
}

/** A campaign's final pick: the candidate, the rule that chose it ('fit' or 'val') and what it considered (JSON). */
export interface FinalPickRecord {
  campaignId: number;
  candidateId: number;
  rule: string;
  detailJson: string;
  createdAt: string;
}

/** One safetensors file of an input model as the campaign recorded it: size and sha256 of its header. */
export interface ModelFileRecord {
  /** The model folder as the campaign names it (absolute path). */
  modelDir: string;
  /** File name inside the folder. */
  file: string;
  size: number;
  headerSha256: string;
}

/** One input a campaign read, as it was when recorded. */
export interface InputFingerprintRecord {
  campaignId: number;
  /** Absolute path of the file or model folder. */
  path: string;
  /** What it is to the campaign: `checkpoint base`, `graph`, `eval file`, `tokenizer`, `suite`. */
  role: string;
  digest: string;
  recordedAt: string;
}

/** A changed input accepted on purpose (`--accept-changed-inputs`). */
export interface InputChangeRecord {
  campaignId: number;
  path: string;
  oldDigest: string;
  newDigest: string;
  acceptedAt: string;
}
