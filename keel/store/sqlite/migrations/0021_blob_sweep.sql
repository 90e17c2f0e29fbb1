-- Removing the blobs nothing names any more (keel prune's sweep, Store.sweep_blobs):
-- the rows that name blobs, each set by a partial index, so the sweep's mark reads
-- them and no other row (its cost follows the rows naming blobs, not the history).
--
-- events_naming_blobs: the events whose stored text names blobs. keel.store.blobs:
-- those, and only those, start with MARKER '{"$blobs":' (10 characters). The sweep
-- queries with exactly this expression, which is what lets SQLite's planner use the
-- index (a partial index serves a query whose WHERE holds its WHERE term as written).
-- (run_id, seq): the mark reads it a page at a time, after a position.
--
-- runs_input_blobs, runs_output_blobs: the runs whose input or output column holds a
-- blob's name ('sha256:<hex>', 7 characters of prefix; no JSON text starts with 's'),
-- covering the column and the id, so the mark reads the index alone.

CREATE INDEX events_naming_blobs ON events (run_id, seq)
    WHERE substr(data, 1, 10) = '{"$blobs":';
CREATE INDEX runs_input_blobs ON runs (input, id) WHERE substr(input, 1, 7) = 'sha256:';
CREATE INDEX runs_output_blobs ON runs (output, id) WHERE substr(output, 1, 7) = 'sha256:';
