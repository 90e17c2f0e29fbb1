-- A run late (SQLite migration 0012): still going past its workflow's expected_duration
-- (the RunLate event, in the same transaction); a retry by hand clears it with the run's
-- time. The index holds the late runs only (few), which `keel runs --late` and the alerts
-- on late runs list.

ALTER TABLE runs ADD COLUMN late boolean NOT NULL DEFAULT false;
CREATE INDEX runs_late ON runs (created_at) WHERE late;
