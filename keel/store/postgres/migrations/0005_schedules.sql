-- Schedules (SQLite migration 0011; keel.runtime.triggers.schedules): one row per
-- schedule name, made when a worker first looks at it or someone pauses it. last_slot
-- (a UTC timestamp) only moves forward and only bounds catching up: a slot's run id is
-- what makes it fire once.

CREATE TABLE schedules (
    name      text PRIMARY KEY,
    workflow  text NOT NULL,
    paused    boolean NOT NULL DEFAULT false,
    paused_by text,
    paused_at double precision,
    last_slot double precision
);
