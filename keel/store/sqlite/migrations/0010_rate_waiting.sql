-- The attempts waiting under a rate limit, found without reading every free attempt: a
-- claim that takes less than it asked for looks for them (to say when one could go),
-- and with a backlog of free attempts and no rate limits that look read the whole queue.

CREATE INDEX ready_rate_waiting ON ready (rate_key)
WHERE owner IS NULL AND NOT held AND rate_key IS NOT NULL;
