-- The ledger of calls steps make outward (keel.store.model_calls): model requests and an
-- agent's tool calls, one row each. A row is written before its request leaves (state
-- 'sent', with the cost reserved for it: the most it can cost) and ended once, when the
-- answer is in ('answered'), the request failed ('failed'), or a later attempt found it
-- sent with no end ('possibly_billed'). Tokens and money are these rows, summed.
--
-- seq numbers the calls of one node (and map item) 0, 1, 2... in the order they were
-- sent, across attempts, given under the write lock that records the call. item is -1
-- for a whole node. request, response and error are JSON. Money (reserved, cost) is in
-- integer nano-dollars (1e-9 USD), so sums are exact. usage_reported is 0 when the
-- provider sent no usage and the tokens are keel's estimate.
--
-- The unique key (run_id, node, item, seq) is also how a run's calls are read, in that
-- order, and what a run's spend sums before a call is recorded. model_calls_by_workflow:
-- what a workflow's runs spent since a time (a day's budget, spend per workflow);
-- model_calls_by_time: the same for every workflow.

CREATE TABLE model_calls (
    id                  TEXT PRIMARY KEY,
    run_id              TEXT NOT NULL,
    workflow            TEXT NOT NULL,
    node                TEXT NOT NULL,
    item                INTEGER NOT NULL,
    attempt             INTEGER NOT NULL,
    seq                 INTEGER NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('model', 'tool')),
    state               TEXT NOT NULL
        CHECK (state IN ('sent', 'answered', 'failed', 'possibly_billed')),
    fingerprint         TEXT NOT NULL,
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    request             TEXT NOT NULL,
    reserved            INTEGER NOT NULL,
    sent_at             REAL NOT NULL,
    response            TEXT,
    error               TEXT,
    finish_reason       TEXT,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
    usage_reported      INTEGER NOT NULL DEFAULT 1,
    cost                INTEGER NOT NULL DEFAULT 0,
    price_source        TEXT NOT NULL DEFAULT '',
    latency             REAL NOT NULL DEFAULT 0,
    ended_at            REAL,
    UNIQUE (run_id, node, item, seq)
);
CREATE INDEX model_calls_by_workflow ON model_calls (workflow, sent_at);
CREATE INDEX model_calls_by_time ON model_calls (sent_at);
