-- Live workers: one row per worker process, written when it starts, its seen_at moved
-- by its heartbeat, removed when it stops cleanly. queues: a JSON array, NULL for every
-- queue. runs: the runs it executes, and only those (keel run, keel resume: a JSON
-- array); NULL for a worker that takes any run from its queues (keel worker).
-- A killed worker's row stays, no longer seen, until it is forgotten.

CREATE TABLE workers (
    owner      TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    queues     TEXT,
    started_at REAL NOT NULL,
    seen_at    REAL NOT NULL,
    runs       TEXT
);
CREATE INDEX workers_by_seen ON workers (seen_at);
