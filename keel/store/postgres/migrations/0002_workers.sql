-- Live workers (SQLite migration 0007): one row per worker process, written when it
-- starts, its seen_at moved by its heartbeat, removed when it stops cleanly. queues: a
-- JSON array, NULL for every queue. runs: the runs it executes, and only those
-- (keel run, keel resume: a JSON array); NULL for a worker that takes any run from its
-- queues (keel worker). A killed worker's row stays, no longer seen, until
-- it is forgotten.

CREATE TABLE workers (
    owner      text COLLATE "C" PRIMARY KEY,
    host       text NOT NULL,
    pid        integer NOT NULL,
    queues     text,
    started_at double precision NOT NULL,
    seen_at    double precision NOT NULL,
    runs       text
);
CREATE INDEX workers_by_seen ON workers (seen_at);
