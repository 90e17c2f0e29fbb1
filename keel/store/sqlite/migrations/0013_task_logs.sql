-- What tasks log through ctx.logger (keel.runtime.execution.task_logs), kept per attempt
-- and bounded by the worker that ran it (at most 1,000 lines and 256 KiB per attempt, a
-- line at most 8 KiB, then one line saying how many more were dropped). Written with the
-- attempt's outcome, and every second or so while it runs. seq numbers a run's lines 1,
-- 2, 3... in the order they were written, under the run's write lock, so a reader paging
-- by seq (keel logs --follow) never misses a line written after its last page. item is
-- -1 for a whole node. Lines are not events: they are not part of the hash chain.

CREATE TABLE task_logs (
    run_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    node    TEXT NOT NULL,
    item    INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at      REAL NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
