-- The ledger summed per workflow, kind, model and state (keel.store.model_calls), kept up
-- to date by the writes that record and end a call (in their transaction): what the
-- server's LLM metrics read at every scrape, in rows bounded by workflows x models x four
-- states, where summing model_calls itself would read every call ever recorded (some
-- 0.5 s at a million calls, growing). A call sent adds to its group's 'sent' row (cost:
-- its reservation); ended, it leaves that row (calls and reservation taken back) for
-- its final state's (its tokens, cost, and estimated when its usage was not reported).
-- Filled here from the calls recorded before it.

CREATE TABLE model_call_sums (
    workflow            TEXT NOT NULL,
    kind                TEXT NOT NULL,
    model               TEXT NOT NULL,
    state               TEXT NOT NULL,
    calls               INTEGER NOT NULL DEFAULT 0,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
    cost                INTEGER NOT NULL DEFAULT 0,
    estimated           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workflow, kind, model, state)
);
INSERT INTO model_call_sums
SELECT workflow, kind, model, state, count(*), sum(input_tokens), sum(output_tokens),
       sum(cached_input_tokens), sum(reasoning_tokens),
       sum(CASE WHEN state = 'sent' THEN reserved ELSE cost END), sum(NOT usage_reported)
FROM model_calls GROUP BY workflow, kind, model, state;
