-- The dashboard (keel serve): why runs failed, what changed lately, and browser sessions.
--
-- runs.failed_node, runs.error_type: the node whose failure failed the run (its
-- RunFailed's) and the type of that node's last error, written with the status 'failed'
-- in the same transaction and cleared when the status leaves it (a retry by hand); NULL
-- for a run that failed as a whole (its outputs could not be computed, say). Runs that
-- failed before this migration get them from their history: each one's last RunFailed
-- and its node's last NodeFailed, read backwards from the end of its events (a few rows
-- per failed run). Three partial indexes (of failed runs only: a run is written to them
-- when it fails) list them newest first by error type and node together, by error type
-- alone, by node alone: without its own, a rare error type read every failed run.
--
--
-- runs_late_by_workflow: a workflow's late runs, newest first (the runs list filtered by
-- workflow and late, and its count): without it, the index of late runs read every late
-- run, or the workflow's index every run of the workflow, to find a few.
--
-- runs_by_update: the change feed (runs_changed) reads the runs written after a
-- position, in (updated_at, id) order; every commit that appends to a run or changes its
-- status or late flag sets updated_at.
--
-- sessions: a browser's sign-in, by the SHA-256 of its cookie's secret (never the secret),
-- standing for the token it was opened with (that token's secret hash: a revoked or
-- expired token ends its sessions where the token is looked up). Expired rows are
-- deleted by forget_sessions.

ALTER TABLE runs ADD COLUMN failed_node TEXT;
ALTER TABLE runs ADD COLUMN error_type TEXT;
UPDATE runs SET failed_node = (
    SELECT e.node FROM events e WHERE e.run_id = runs.id AND e.kind = 'run_failed'
    ORDER BY e.seq DESC LIMIT 1)
WHERE status = 'failed';
UPDATE runs SET error_type = (
    SELECT json_extract(e.data, '$.error.type') FROM events e
    WHERE e.run_id = runs.id AND e.kind = 'node_failed' AND e.node = runs.failed_node
    ORDER BY e.seq DESC LIMIT 1)
WHERE status = 'failed' AND failed_node IS NOT NULL;
CREATE INDEX runs_failed ON runs (error_type, failed_node, created_at) WHERE status = 'failed';
CREATE INDEX runs_failed_by_error ON runs (error_type, created_at) WHERE status = 'failed';
CREATE INDEX runs_failed_by_node ON runs (failed_node, created_at) WHERE status = 'failed';

CREATE INDEX runs_by_update ON runs (updated_at, id);
CREATE INDEX runs_late_by_workflow ON runs (workflow, created_at) WHERE late;

CREATE TABLE sessions (
    secret_hash TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
