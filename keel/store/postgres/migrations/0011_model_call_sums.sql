-- The ledger summed per workflow, kind, model and state (SQLite migration 0017;
-- keel.store.model_calls), kept up to date by the writes that record and end a call (in
-- their transaction): what the server's LLM metrics read at every scrape, in rows
-- bounded by workflows x models x four states, where summing model_calls itself would
-- read every call ever recorded. A call sent adds to its group's 'sent' row (cost: its
-- reservation); ended, it leaves that row for its final state's (its tokens, cost, and
-- estimated when its usage was not reported). Filled here from the calls recorded
-- before it.
--
-- Every write of a call updates its group's 'sent' row, then (ending it) its final
-- state's: always in that order, so two writers never wait for each other in a circle.
-- The rows of one workflow and model are shared by all its runs: their writes queue on
-- them for the few statements left in their transaction.

CREATE TABLE model_call_sums (
    workflow            text NOT NULL,
    kind                text NOT NULL,
    model               text NOT NULL,
    state               text NOT NULL,
    calls               bigint NOT NULL DEFAULT 0,
    input_tokens        bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    cached_input_tokens bigint NOT NULL DEFAULT 0,
    reasoning_tokens    bigint NOT NULL DEFAULT 0,
    cost                bigint NOT NULL DEFAULT 0,
    estimated           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workflow, kind, model, state)
);
INSERT INTO model_call_sums
SELECT workflow, kind, model, state, count(*), sum(input_tokens), sum(output_tokens),
       sum(cached_input_tokens), sum(reasoning_tokens),
       sum(CASE WHEN state = 'sent' THEN reserved ELSE cost END),
       count(*) FILTER (WHERE NOT usage_reported)
FROM model_calls GROUP BY workflow, kind, model, state;
