-- Large values of events and of runs' input and output columns, stored once by the
-- SHA-256 of their canonical JSON (keel.store.blobs): name is 'sha256:<hex>', size the
-- bytes of data (UTF-8), created_at when it was first stored. A history row names its
-- blobs; the chain covers the name, the name proves the content (keel verify). A rowid
-- table: rows this large would spread a WITHOUT ROWID table's pages thin.

CREATE TABLE blobs (
    name       TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    data       TEXT NOT NULL,
    created_at REAL NOT NULL
);
