-- The ready queue is rewritten by every step (the finished attempt's row goes, the next
-- one's comes), so each b-tree it has costs a page written to the WAL per commit.
-- Clustered on its key (WITHOUT ROWID) it keeps one b-tree instead of two, and the index
-- by owner goes: owners are looked up only by renewal and reclaim, every few seconds,
-- and the queue holds only work that is ready or running, so those scan a small table.

CREATE TABLE ready_new (
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
) WITHOUT ROWID;

INSERT INTO ready_new
SELECT run_id, node, item, attempt, queue, priority, available_at, owner, lease_expires
FROM ready;

DROP TABLE ready;

ALTER TABLE ready_new RENAME TO ready;

CREATE INDEX ready_free ON ready (priority DESC, available_at) WHERE owner IS NULL;
