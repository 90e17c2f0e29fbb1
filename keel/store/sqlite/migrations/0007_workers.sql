-- Live workers: one row per worker process, written when it starts, its seen_at moved
-- by its heartbeat, removed when it stops cleanly. queues: a JSON array, NULL for every
-- queue. A killed worker's row stays, no longer seen, until it is forgotten.

CREATE TABLE workers (
    owner      TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    queues     TEXT,
    started_at REAL NOT NULL,
    seen_at    REAL NOT NULL
);
CREATE INDEX workers_by_seen ON workers (seen_at);
