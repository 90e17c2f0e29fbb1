-- The embedded store: specs by version, runs, append-only events with a hash chain,
-- the ready queue with leases, and timers.

CREATE TABLE specs (
    version    TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    workflow     TEXT NOT NULL,
    spec_version TEXT NOT NULL REFERENCES specs (version),
    status       TEXT NOT NULL,
    input        TEXT NOT NULL,
    output       TEXT,
    reason       TEXT,
    origin       TEXT,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    last_seq     INTEGER NOT NULL,
    head_hash    TEXT NOT NULL
);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_workflow ON runs (workflow, created_at);
CREATE INDEX runs_by_created ON runs (created_at);

CREATE TABLE events (
    run_id    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    at        REAL NOT NULL,
    kind      TEXT NOT NULL,
    node      TEXT,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- item is -1 for a whole node, the index for one item of a map
CREATE TABLE ready (
    run_id        TEXT NOT NULL,
    node          TEXT NOT NULL,
    item          INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    queue         TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    available_at  REAL NOT NULL,
    owner         TEXT,
    lease_expires REAL,
    PRIMARY KEY (run_id, node, item)
);
CREATE INDEX ready_free ON ready (priority DESC, available_at) WHERE owner IS NULL;
CREATE INDEX ready_held ON ready (owner) WHERE owner IS NOT NULL;

CREATE TABLE timers (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    due_at REAL NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX timers_by_due ON timers (due_at);
