-- Tables added to schema version 1 without changing it (created when a database is opened for writing, so
-- databases made before them gain them; readers treat them as empty when absent).

-- Per-item pseudo-values of a score (float64 little-endian, file order): what the paired SE of two models'
-- difference on the same items is computed from. Kept for the test split only.
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
