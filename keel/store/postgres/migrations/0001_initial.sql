-- The multi-host store: the same tables as the embedded one (SQLite migrations 0001-0006),
-- in PostgreSQL types. Identifiers use the "C" collation so that ordering and prefix
-- lookups are byte-wise, as on SQLite.

CREATE TABLE specs (
    version    text COLLATE "C" PRIMARY KEY,
    name       text NOT NULL,
    spec       text NOT NULL,
    created_at double precision NOT NULL
);

CREATE TABLE runs (
    id           text COLLATE "C" PRIMARY KEY,
    workflow     text NOT NULL,
    spec_version text COLLATE "C" NOT NULL REFERENCES specs (version),
    status       text NOT NULL,
    input        text NOT NULL,
    output       text,
    reason       text,
    origin       text,
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL,
    last_seq     integer NOT NULL,
    head_hash    text NOT NULL,
    parent_run   text COLLATE "C",
    parent_node  text
);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_workflow ON runs (workflow, created_at);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_parent ON runs (parent_run) WHERE parent_run IS NOT NULL;

CREATE TABLE events (
    run_id    text COLLATE "C" NOT NULL,
    seq       integer NOT NULL,
    at        double precision NOT NULL,
    kind      text NOT NULL,
    node      text,
    data      text NOT NULL,
    prev_hash text NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- item is -1 for a whole node, the index for one item of a map. held: the run is
-- paused. limit_*: the attempt's concurrency key; rate_*: its rate-limit key.
CREATE TABLE ready (
    run_id        text COLLATE "C" NOT NULL,
    node          text COLLATE "C" NOT NULL,
    item          integer NOT NULL,
    attempt       integer NOT NULL,
    queue         text NOT NULL,
    priority      integer NOT NULL,
    available_at  double precision NOT NULL,
    circuit       text,
    held          boolean NOT NULL DEFAULT false,
    limit_key     text,
    limit_max     integer,
    rate_key      text,
    rate_max      integer,
    rate_per      double precision,
    owner         text,
    lease_expires double precision,
    PRIMARY KEY (run_id, node, item)
);
CREATE INDEX ready_free ON ready (priority DESC, available_at) WHERE owner IS NULL AND NOT held;
CREATE INDEX ready_held_by ON ready (owner) WHERE owner IS NOT NULL;
CREATE INDEX ready_limited ON ready (limit_key) WHERE owner IS NOT NULL AND limit_key IS NOT NULL;

CREATE TABLE timers (
    run_id text COLLATE "C" NOT NULL,
    key    text COLLATE "C" NOT NULL,
    due_at double precision NOT NULL,
    data   text NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX timers_by_due ON timers (due_at);

CREATE TABLE circuits (
    name        text COLLATE "C" PRIMARY KEY,
    failures    integer NOT NULL,
    open_until  double precision,
    probe_until double precision,
    updated_at  double precision NOT NULL
);

CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    run_id       text COLLATE "C" NOT NULL,
    notifier     text NOT NULL,
    payload      text NOT NULL,
    created_at   double precision NOT NULL,
    deliveries   integer NOT NULL DEFAULT 0,
    next_at      double precision,
    owner        text,
    lease_until  double precision,
    delivered_at double precision,
    error        text
);
CREATE INDEX outbox_due ON outbox (next_at) WHERE next_at IS NOT NULL;
CREATE INDEX outbox_by_run ON outbox (run_id);

CREATE TABLE waits (
    run_id    text COLLATE "C" NOT NULL,
    node      text COLLATE "C" NOT NULL,
    waits_for text NOT NULL,
    since     double precision NOT NULL,
    until     double precision,
    details   text NOT NULL,
    PRIMARY KEY (run_id, node)
);
CREATE INDEX waits_by_kind ON waits (waits_for, since);

-- Rate limits: the attempts started per key, kept a while past their window (see
-- RATE_SLACK in the store) so that claims with slightly different clocks agree.
CREATE TABLE rate_starts (
    key text COLLATE "C" NOT NULL,
    at  double precision NOT NULL
);
CREATE INDEX rate_starts_by_key ON rate_starts (key, at);
