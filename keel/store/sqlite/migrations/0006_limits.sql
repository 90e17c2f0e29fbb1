-- Concurrency and rate limits per key, across every worker: the ready queue carries each
-- attempt's keys, and rate_starts the recent starts per rate key (a sliding window).

ALTER TABLE ready ADD COLUMN limit_key TEXT;
ALTER TABLE ready ADD COLUMN limit_max INTEGER;
ALTER TABLE ready ADD COLUMN rate_key TEXT;
ALTER TABLE ready ADD COLUMN rate_max INTEGER;
ALTER TABLE ready ADD COLUMN rate_per REAL;
CREATE INDEX ready_limited ON ready (limit_key) WHERE owner IS NOT NULL AND limit_key IS NOT NULL;

CREATE TABLE rate_starts (
    key TEXT NOT NULL,
    at  REAL NOT NULL
);
CREATE INDEX rate_starts_by_key ON rate_starts (key, at);
