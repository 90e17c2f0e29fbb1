-- Retention (SQLite migration 0020; keel prune, keel.audit.retention): the payloads of
-- old runs are removed, a tombstone is kept in their place.
--
-- runs.pruned_at: when the run's payloads were removed (NULL: never). A pruned run keeps
-- its row (status, workflow, times, last_seq, head_hash) with its input and output
-- cleared; its events, task log lines, LLM ledger rows, queue, timer, wait and outbox
-- rows are gone. It takes no more events: select_head and advance_head do not see it.
--
-- runs_to_prune: the ended runs not pruned yet, by end time: what a prune reads.
--
-- tombstones: what is left of a pruned run, written in the transaction that removes its
-- payloads; data is the tombstone as JSON (keel.audit.records.Tombstone, signed).
--
-- model_call_sums is left as it is: it counts every call ever made, pruned or not.

ALTER TABLE runs ADD COLUMN pruned_at double precision;
CREATE INDEX runs_to_prune ON runs (ended_at, id) WHERE pruned_at IS NULL AND ended_at IS NOT NULL;

CREATE TABLE tombstones (
    run_id    text COLLATE "C" PRIMARY KEY,
    pruned_at double precision NOT NULL,
    data      text NOT NULL
);
CREATE INDEX tombstones_by_time ON tombstones (pruned_at, run_id);
