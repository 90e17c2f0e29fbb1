-- The service (keel serve): who started a run, API tokens, deployed workflow versions.
-- runs.started_by: the identity that started the run (a token's name; NULL for a run
-- started by code or the CLI on the database directly).
-- tokens: one row per token ever created, never deleted (the identity in a history must
-- stay explainable): only the SHA-256 of the secret is kept; groups is a JSON array.
-- deployments: append-only, one row per deploy; a workflow's current version is the
-- version of its newest row (deploying an older version again rolls back).

ALTER TABLE runs ADD COLUMN started_by TEXT;
CREATE INDEX runs_by_starter ON runs (started_by, created_at) WHERE started_by IS NOT NULL;
CREATE INDEX runs_by_version ON runs (spec_version, created_at);

CREATE TABLE tokens (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    groups      TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  REAL NOT NULL,
    created_by  TEXT,
    expires_at  REAL,
    revoked_at  REAL,
    revoked_by  TEXT
);

CREATE TABLE deployments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow    TEXT NOT NULL,
    version     TEXT NOT NULL REFERENCES specs (version),
    deployed_at REAL NOT NULL,
    deployed_by TEXT,
    source      TEXT
);
CREATE INDEX deployments_by_workflow ON deployments (workflow, id);
