-- A run late: still going past its workflow's expected_duration (the RunLate event, in
-- the same transaction); a retry by hand clears it with the run's time. The index holds
-- the late runs only (few), which `keel runs --late` and the alerts on late runs list.

ALTER TABLE runs ADD COLUMN late INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_late ON runs (created_at) WHERE late;
