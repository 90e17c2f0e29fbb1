-- Large values of events and of runs' input and output columns, stored once by the
-- SHA-256 of their canonical JSON (SQLite migration 0018; keel.store.blobs): name is
-- 'sha256:<hex>', size the bytes of data (UTF-8), created_at when it was first stored.
-- A history row names its blobs; the chain covers the name, the name proves the
-- content (keel verify). Two writers storing the same blob: the second waits for the
-- first and stores nothing (ON CONFLICT DO NOTHING); each stores its blobs by name.

CREATE TABLE blobs (
    name       text COLLATE "C" PRIMARY KEY,
    size       bigint NOT NULL,
    data       text NOT NULL,
    created_at double precision NOT NULL
);
