-- Circuit breakers: the state of each named resource, shared by every worker through the
-- store. No row means closed with no failure counted. A tripped circuit keeps its row:
-- while open_until is ahead, attempts that need it stay on the queue; after it, one
-- attempt is let through as the probe (probe_until holds the others back meanwhile).

CREATE TABLE circuits (
    name        TEXT PRIMARY KEY,
    failures    INTEGER NOT NULL,
    open_until  REAL,
    probe_until REAL,
    updated_at  REAL NOT NULL
);

ALTER TABLE ready ADD COLUMN circuit TEXT;
