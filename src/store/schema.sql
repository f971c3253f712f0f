-- evomerge campaign database, schema version 2 (version 1 lacked the two input tables at the end). Plural snake_case tables, <table>_id keys, *_json for JSON
-- text. Non-finite numbers: the REAL column holds NULL and the *_type column says 'inf', '-inf' or 'nan'
-- (as optuna's trial_values.value_type); 'finite' means the REAL column holds the value.

CREATE TABLE schema_version (
  version    INTEGER NOT NULL,
  applied_at TEXT    NOT NULL
);

CREATE TABLE campaigns (
  campaign_id   INTEGER PRIMARY KEY,
  name          TEXT    NOT NULL,
  config_json   TEXT    NOT NULL,
  config_hash   TEXT    NOT NULL,
  seed          INTEGER NOT NULL,
  versions_json TEXT    NOT NULL,
  device        TEXT    NOT NULL,
  created_at    TEXT    NOT NULL
);

-- kind: 'search' (asked by the optimiser; has an ordinal), 'source' (an input model scored as is),
-- 'reference' (an un-optimised merge such as TIES at density 0.5, for the report).
CREATE TABLE candidates (
  candidate_id   INTEGER PRIMARY KEY,
  campaign_id    INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
  kind           TEXT    NOT NULL CHECK (kind IN ('search', 'source', 'reference')),
  label          TEXT,
  ordinal        INTEGER,
  generation     INTEGER,
  genome_json    TEXT,
  recipe_yaml    TEXT,
  content_hash   TEXT    NOT NULL,
  status         TEXT    NOT NULL CHECK (status IN ('pending', 'merged', 'evaluated', 'kept', 'rejected', 'failed')),
  objective      REAL,
  objective_type TEXT CHECK (objective_type IN ('finite', 'inf', '-inf', 'nan')),
  error_code     TEXT,
  error_message  TEXT,
  merge_ms       REAL,
  eval_ms        REAL,
  created_at     TEXT    NOT NULL,
  finished_at    TEXT,
  UNIQUE (campaign_id, ordinal),
  UNIQUE (campaign_id, content_hash),
  CHECK ((kind = 'search') = (ordinal IS NOT NULL))
);

CREATE TABLE scores (
  candidate_id INTEGER NOT NULL REFERENCES candidates (candidate_id) ON DELETE CASCADE,
  task         TEXT    NOT NULL,
  metric       TEXT    NOT NULL,
  split        TEXT    NOT NULL,
  value        REAL,
  value_type   TEXT    NOT NULL CHECK (value_type IN ('finite', 'inf', '-inf', 'nan')),
  se           REAL,
  n            INTEGER NOT NULL,
  PRIMARY KEY (candidate_id, task, metric, split)
);

CREATE TABLE gate_verdicts (
  candidate_id    INTEGER NOT NULL REFERENCES candidates (candidate_id) ON DELETE CASCADE,
  gate            TEXT    NOT NULL,
  kind            TEXT    NOT NULL,
  task            TEXT    NOT NULL,
  metric          TEXT    NOT NULL,
  split           TEXT    NOT NULL,
  value           REAL,
  value_type      TEXT    NOT NULL CHECK (value_type IN ('finite', 'inf', '-inf', 'nan')),
  threshold       REAL,
  threshold_type  TEXT    NOT NULL CHECK (threshold_type IN ('finite', 'inf', '-inf', 'nan')),
  pass            INTEGER NOT NULL CHECK (pass IN (0, 1)),
  PRIMARY KEY (candidate_id, gate, split)
);

-- told_count: results the optimiser had been told, over the whole campaign, when the state was taken.
CREATE TABLE optimizer_states (
  campaign_id INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
  generation  INTEGER NOT NULL,
  told_count  INTEGER NOT NULL,
  state_json  TEXT    NOT NULL,
  created_at  TEXT    NOT NULL,
  PRIMARY KEY (campaign_id, generation, told_count)
);

CREATE INDEX candidates_by_status ON candidates (campaign_id, status);
CREATE INDEX candidates_by_generation ON candidates (campaign_id, generation);

-- What a campaign read, as it was when recorded (digest: see search/fingerprint.ts). A resume, an export or a
-- report compares the inputs as they are now against these rows.
CREATE TABLE input_fingerprints (
  campaign_id INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
  path        TEXT    NOT NULL,
  role        TEXT    NOT NULL,
  digest      TEXT    NOT NULL,
  recorded_at TEXT    NOT NULL,
  PRIMARY KEY (campaign_id, path)
);

-- Inputs that changed and were accepted on purpose (--accept-changed-inputs): the campaign's scores from
-- before accepted_at were made with old_digest.
CREATE TABLE input_changes (
  campaign_id INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
  path        TEXT    NOT NULL,
  old_digest  TEXT    NOT NULL,
  new_digest  TEXT    NOT NULL,
  accepted_at TEXT    NOT NULL
);
