-- The ledger of calls steps make outward (SQLite migration 0016; keel.store.model_calls):
-- model requests and an agent's tool calls, one row each. A row is written before its
-- request leaves (state 'sent', with the cost reserved for it: the most it can cost) and
-- ended once, when the answer is in ('answered'), the request failed ('failed'), or a
-- later attempt found it sent with no end ('possibly_billed'). Tokens and money are these
-- rows, summed.
--
-- seq numbers the calls of one node (and map item) 0, 1, 2... in the order they were
-- sent, across attempts, given while the run's spend lock is held (an advisory lock
-- taken by the transaction that records the call). item is -1 for a whole node. request,
-- response and error are JSON, as text like every JSON column of the store. Money
-- (reserved, cost) is in integer nano-dollars (1e-9 USD), so sums are exact.
-- usage_reported is false when the provider sent no usage and the tokens are keel's
-- estimate.
--
-- The unique key (run_id, node, item, seq) is also how a run's calls are read, in that
-- order, and what a run's spend sums before a call is recorded. model_calls_by_workflow:
-- what a workflow's runs spent since a time (a day's budget, spend per workflow);
-- model_calls_by_time: the same for every workflow.

CREATE TABLE model_calls (
    id                  text COLLATE "C" PRIMARY KEY,
    run_id              text COLLATE "C" NOT NULL,
    workflow            text NOT NULL,
    node                text COLLATE "C" NOT NULL,
    item                integer NOT NULL,
    attempt             integer NOT NULL,
    seq                 integer NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('model', 'tool')),
    state               text NOT NULL
        CHECK (state IN ('sent', 'answered', 'failed', 'possibly_billed')),
    fingerprint         text NOT NULL,
    provider            text NOT NULL,
    model               text NOT NULL,
    request             text NOT NULL,
    reserved            bigint NOT NULL,
    sent_at             double precision NOT NULL,
    response            text,
    error               text,
    finish_reason       text,
    input_tokens        integer NOT NULL DEFAULT 0,
    output_tokens       integer NOT NULL DEFAULT 0,
    cached_input_tokens integer NOT NULL DEFAULT 0,
    reasoning_tokens    integer NOT NULL DEFAULT 0,
    usage_reported      boolean NOT NULL DEFAULT true,
    cost                bigint NOT NULL DEFAULT 0,
    price_source        text NOT NULL DEFAULT '',
    latency             double precision NOT NULL DEFAULT 0,
    ended_at            double precision,
    UNIQUE (run_id, node, item, seq)
);
CREATE INDEX model_calls_by_workflow ON model_calls (workflow, sent_at);
CREATE INDEX model_calls_by_time ON model_calls (sent_at);
