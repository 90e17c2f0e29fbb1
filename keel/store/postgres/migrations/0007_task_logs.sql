-- What tasks log through ctx.logger (SQLite migration 0013;
-- keel.runtime.execution.task_logs), kept per attempt and bounded by the worker that ran
-- it (at most 1,000 lines and 256 KiB per attempt, a line at most 8 KiB, then one line
-- saying how many more were dropped). Written with the attempt's outcome, and every
-- second or so while it runs. seq numbers a run's lines 1, 2, 3... in the order they were
-- written, under the run's row lock, so a reader paging by seq (keel logs --follow) never
-- misses a line committed after its last page. item is -1 for a whole node. Lines are not
-- events: they are not part of the hash chain.

CREATE TABLE task_logs (
    run_id  text COLLATE "C" NOT NULL,
    seq     integer NOT NULL,
    node    text COLLATE "C" NOT NULL,
    item    integer NOT NULL,
    attempt integer NOT NULL,
    at      double precision NOT NULL,
    level   text NOT NULL,
    message text NOT NULL,
    PRIMARY KEY (run_id, seq)
);
