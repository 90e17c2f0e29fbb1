-- Retention (keel prune, keel.audit.retention): the payloads of old runs are removed, a
-- tombstone is kept in their place.
--
-- runs.pruned_at: when the run's payloads were removed (NULL: never). A pruned run keeps
-- its row (status, workflow, times, last_seq, head_hash: what its history ended at) with
-- its input and output cleared (input 'null', output NULL); its events, task log lines,
-- LLM ledger rows, queue, timer, wait and outbox rows are gone. It takes no more events:
-- select_head and advance_head do not see it.
--
-- runs_to_prune: the ended runs not pruned yet, by end time: what a prune reads, batch
-- after batch, without reading past the runs pruned before.
--
-- outbox_by_run: a prune removes the notifications of the runs it prunes (PostgreSQL has
-- this index from its first migration).
--
-- tombstones: what is left of a pruned run, one row each, written in the transaction
-- that removes its payloads (a crash leaves a run either pruned with its tombstone or
-- untouched): data is the tombstone as JSON (keel.audit.records.Tombstone: the run, its
-- head, the counts removed, who pruned it and when, and the signature over all of it).
--
-- model_call_sums is left as it is: it counts every call ever made (the metrics it feeds
-- are counters, which never go down), pruned or not.

ALTER TABLE runs ADD COLUMN pruned_at REAL;
CREATE INDEX runs_to_prune ON runs (ended_at, id) WHERE pruned_at IS NULL AND ended_at IS NOT NULL;

CREATE INDEX outbox_by_run ON outbox (run_id);

CREATE TABLE tombstones (
    run_id    TEXT PRIMARY KEY,
    pruned_at REAL NOT NULL,
    data      TEXT NOT NULL
);
CREATE INDEX tombstones_by_time ON tombstones (pruned_at, run_id);
