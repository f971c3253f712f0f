-- Version 1 → 2: the inputs a campaign read (input_fingerprints) and the changes accepted on purpose
-- (input_changes). Applied in one transaction with the version row; schema.sql holds the same tables.
CREATE TABLE input_fingerprints (
  campaign_id INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
  path TEXT NOT NULL, role TEXT NOT NULL, digest TEXT NOT NULL, recorded_at TEXT NOT NULL,
  PRIMARY KEY (campaign_id, path));
CREATE TABLE input_changes (
  campaign_id INTEGER NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
  path TEXT NOT NULL, old_digest TEXT NOT NULL, new_digest TEXT NOT NULL, accepted_at TEXT NOT NULL);
