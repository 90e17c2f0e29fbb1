-- Notifications waiting to be delivered: written in the same transaction as the event
-- that calls for them (a transactional outbox), so a crash between the commit and the
-- delivery loses nothing. Delivered rows keep delivered_at; given-up ones keep the error.

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL,
    notifier     TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   REAL NOT NULL,
    deliveries   INTEGER NOT NULL DEFAULT 0,
    next_at      REAL,
    owner        TEXT,
    lease_until  REAL,
    delivered_at REAL,
    error        TEXT
);
CREATE INDEX outbox_due ON outbox (next_at) WHERE next_at IS NOT NULL;
