-- The service (SQLite migration 0009): who started a run, API tokens, deployed workflow
-- versions. runs.started_by: the identity that started the run (a token's name; NULL for
-- a run started by code or the CLI on the database directly). tokens: one row per token
-- ever created, never deleted; only the SHA-256 of the secret is kept; groups is a JSON
-- array. deployments: append-only, one row per deploy; a workflow's current version is
-- the version of its newest row (deploying an older version again rolls back).

ALTER TABLE runs ADD COLUMN started_by text;
CREATE INDEX runs_by_starter ON runs (started_by, created_at) WHERE started_by IS NOT NULL;
CREATE INDEX runs_by_version ON runs (spec_version, created_at);

CREATE TABLE tokens (
    name        text PRIMARY KEY,
    role        text NOT NULL,
    groups      text NOT NULL,
    secret_hash text COLLATE "C" NOT NULL UNIQUE,
    created_at  double precision NOT NULL,
    created_by  text,
    expires_at  double precision,
    revoked_at  double precision,
    revoked_by  text
);

CREATE TABLE deployments (
    id          bigserial PRIMARY KEY,
    workflow    text NOT NULL,
    version     text COLLATE "C" NOT NULL REFERENCES specs (version),
    deployed_at double precision NOT NULL,
    deployed_by text,
    source      text
);
CREATE INDEX deployments_by_workflow ON deployments (workflow, id);
