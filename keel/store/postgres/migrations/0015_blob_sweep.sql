-- Removing the blobs nothing names any more (SQLite migration 0021; keel prune's sweep,
-- Store.sweep_blobs): the rows that name blobs, each set by a partial index, so the
-- sweep's mark reads them and no other row.
--
-- events_naming_blobs: the events whose stored text (data) names blobs: those, and
-- only those, start with keel.store.blobs.MARKER '{"$blobs":' (10 characters); the
-- sweep queries with exactly this expression, so the planner proves the index serves
-- it. Events are only inserted: the index costs one substr per insert and holds a few
-- rows. (run_id, seq): the mark reads it a page at a time, after a position.
--
-- runs_input_blobs, runs_output_blobs: the runs whose input or output column holds a
-- blob's name ('sha256:<hex>'). An update that leaves input and output as they are (a
-- head moving on) stays a HOT update.

CREATE INDEX events_naming_blobs ON events (run_id, seq)
    WHERE substr(data, 1, 10) = '{"$blobs":';
CREATE INDEX runs_input_blobs ON runs (input, id) WHERE substr(input, 1, 7) = 'sha256:';
CREATE INDEX runs_output_blobs ON runs (output, id) WHERE substr(output, 1, 7) = 'sha256:';
