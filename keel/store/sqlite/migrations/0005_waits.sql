-- Waiting: child runs know their parent; nodes that wait for something outside the run
-- (an approval, a timer, a signal, a child run) are listed here while they wait, so
-- `keel approvals` reads one indexed table instead of replaying every history.

ALTER TABLE runs ADD COLUMN parent_run TEXT;
ALTER TABLE runs ADD COLUMN parent_node TEXT;
CREATE INDEX runs_by_parent ON runs (parent_run) WHERE parent_run IS NOT NULL;

CREATE TABLE waits (
    run_id    TEXT NOT NULL,
    node      TEXT NOT NULL,
    waits_for TEXT NOT NULL,
    since     REAL NOT NULL,
    until     REAL,
    details   TEXT NOT NULL,
    PRIMARY KEY (run_id, node)
) WITHOUT ROWID;
CREATE INDEX waits_by_kind ON waits (waits_for, since);
