-- Schedules (keel.runtime.triggers.schedules): one row per schedule name, made when a
-- worker first looks at it or someone pauses it. last_slot (a UTC timestamp) only moves
-- forward and only bounds catching up: a slot's run id is what makes it fire once.

CREATE TABLE schedules (
    name      TEXT PRIMARY KEY,
    workflow  TEXT NOT NULL,
    paused    INTEGER NOT NULL DEFAULT 0,
    paused_by TEXT,
    paused_at REAL,
    last_slot REAL
);
