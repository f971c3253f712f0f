-- The evomerge campaign database, whole, at the current schema version (SCHEMA_VERSION in schema.ts). A new
-- database is made from this file; an older one is brought here by migrations/NNNN-*.sql, one file per version.
-- Every statement is IF NOT EXISTS because this file is also run on every writable open, after the migrations:
-- item_values, final_picks and model_files were added to versions 1 and 2 without a version of their own, so a
-- database of either version may lack them. A new column or table: a migration file and the same change here.
--
-- Plural snake_case tables, <table>_id keys, *_json for JSON text. Non-finite numbers: the REAL column holds
-- NULL and the *_type column says 'inf', '-inf' or 'nan' (as optuna's trial_values.value_type); 'finite' means
-- the REAL column holds the value.

CREATE TABLE IF NOT EXISTS schema_version (
  version    INTEGER NOT NULL,
  applied_at TEXT    NOT NULL
);

CREATE TABLE IF NOT EXISTS campaigns (
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
CREATE TABLE IF NOT EXISTS candidates (
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

CREATE TABLE IF NOT EXISTS scores (
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

CREATE TABLE IF NOT EXISTS gate_verdicts (
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
CREATE TABLE IF NOT EXISTS optimizer_states (
  campaign_id INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
  generation  INTEGER NOT NULL,
  told_count  INTEGER NOT NULL,
  state_json  TEXT    NOT NULL,
  created_at  TEXT    NOT NULL,
  PRIMARY KEY (campaign_id, generation, told_count)
);

CREATE INDEX IF NOT EXISTS candidates_by_status ON candidates (campaign_id, status);
CREATE INDEX IF NOT EXISTS candidates_by_generation ON candidates (campaign_id, generation);

-- What a campaign read, as it was when recorded (digest: see search/fingerprint.ts). A resume, an export or a
-- report compares the inputs as they are now against these rows.
CREATE TABLE IF NOT EXISTS input_fingerprints (
  campaign_id INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
  path        TEXT    NOT NULL,
  role        TEXT    NOT NULL,
  digest      TEXT    NOT NULL,
  recorded_at TEXT    NOT NULL,
  PRIMARY KEY (campaign_id, path)
);

-- Inputs that changed and were accepted on purpose (--accept-changed-inputs): the campaign's scores from
-- before accepted_at were made with old_digest.
CREATE TABLE IF NOT EXISTS input_changes (
  campaign_id INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
  path        TEXT    NOT NULL,
  old_digest  TEXT    NOT NULL,
  new_digest  TEXT    NOT NULL,
  accepted_at TEXT    NOT NULL
);

-- Per-item pseudo-values of a score (float64 little-endian, file order): what the paired SE of two models'
-- difference on the same items is computed from. Kept for the test split; for the fit split (and each rung's
-- fit@r) only when the campaign's optimiser reads per-item values (M2N2), for the objective's measures.
CREATE TABLE IF NOT EXISTS item_values (
  candidate_id INTEGER NOT NULL REFERENCES candidates (candidate_id) ON DELETE CASCADE,
  task         TEXT    NOT NULL,
  metric       TEXT    NOT NULL,
  split        TEXT    NOT NULL,
  n            INTEGER NOT NULL,
  vals         BLOB    NOT NULL,
  PRIMARY KEY (candidate_id, task, metric, split)
);

-- The campaign's final pick (what export takes as best and the report calls best), replaced when a continued
-- campaign picks again. rule: 'fit' (best kept by fit) or 'val' (best of the top-k by fit on val);
-- detail_json: the candidates considered with their fit and val estimates.
CREATE TABLE IF NOT EXISTS final_picks (
  campaign_id  INTEGER PRIMARY KEY REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
  candidate_id INTEGER NOT NULL REFERENCES candidates (candidate_id) ON DELETE CASCADE,
  rule         TEXT    NOT NULL,
  detail_json  TEXT    NOT NULL,
  created_at   TEXT    NOT NULL
);

-- The safetensors files of a campaign's input models as the campaign first saw them (size and a hash of the
-- header), so a remote worker can refuse a job when its copy of a model differs.
CREATE TABLE IF NOT EXISTS model_files (
  campaign_id   INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
  model_dir     TEXT    NOT NULL,
  file          TEXT    NOT NULL,
  size          INTEGER NOT NULL,
  header_sha256 TEXT    NOT NULL,
  PRIMARY KEY (campaign_id, model_dir, file)
);
