-- Alerts (SQLite migration 0014; keel.runtime.alerts): the rules are in keel.toml; the
-- store keeps what their evaluation found, so a restart or another process goes on
-- where the last one was.
--
-- runs.ended_at: when a run ended, set with its final status (a retry by hand clears
-- it), so the failure rate and the durations of the runs that ended in a window read
-- one index instead of every run. A run that ended before this migration takes the time
-- of its last event. Only a status change writes it: appending events stays a HOT update.

ALTER TABLE runs ADD COLUMN ended_at double precision;
UPDATE runs SET ended_at = updated_at WHERE status IN ('succeeded', 'failed', 'cancelled');
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;

-- One row per rule: ok, pending (holds, not yet for its `for`) or firing, since when, the
-- incident it fires for (the notifications' idempotency key), the last value read, and
-- what the rule checks (JSON, for `keel alerts` and the API).
CREATE TABLE alerts (
    name         text COLLATE "C" PRIMARY KEY,
    rule         text NOT NULL,
    state        text NOT NULL,
    since        double precision NOT NULL,
    incident     text,
    value        double precision,
    evaluated_at double precision NOT NULL
);

-- The one process that evaluates the rules now (a lease, id 1): taken when free or
-- expired, renewed by its holder at each evaluation, given back when it stops.
CREATE TABLE alert_lease (
    id      integer PRIMARY KEY CHECK (id = 1),
    owner   text NOT NULL,
    expires double precision NOT NULL
);

-- The notifications of alerts (firing, resolved), written in the same transaction as
-- the state they report, delivered afterwards by the lease holder: a crash between the
-- two loses nothing. Delivered rows keep delivered_at; given-up ones keep the error.
CREATE TABLE alert_notices (
    id           bigserial PRIMARY KEY,
    alert        text NOT NULL,
    notifier     text NOT NULL,
    payload      text NOT NULL,
    created_at   double precision NOT NULL,
    deliveries   integer NOT NULL DEFAULT 0,
    next_at      double precision,
    delivered_at double precision,
    error        text
);
CREATE INDEX alert_notices_due ON alert_notices (next_at) WHERE next_at IS NOT NULL;
