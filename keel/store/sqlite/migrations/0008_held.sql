-- A paused run's queued attempts are marked held, as on PostgreSQL, instead of being put
-- out of reach by a fixed offset (1e12 s, about 31,000 years) added to available_at.
-- Rows held that old way get the mark and their time back (to within 0.1 ms: the sum kept
-- fewer digits below the second, which no queue order depends on). The index of free
-- attempts leaves held ones out, as PostgreSQL's does.

ALTER TABLE ready ADD COLUMN held INTEGER NOT NULL DEFAULT 0;

UPDATE ready SET held = 1, available_at = available_at - 1e12 WHERE available_at > 1e11;

DROP INDEX ready_free;

CREATE INDEX ready_free ON ready (priority DESC, available_at) WHERE owner IS NULL AND NOT held;
