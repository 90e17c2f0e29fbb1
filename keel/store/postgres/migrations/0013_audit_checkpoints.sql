-- Signed checkpoints of run heads (SQLite migration 0019; keel.audit.checkpoints): the
-- heads of runs at a moment, signed with a key the database never holds, so that a
-- history rewritten after it (even its whole chain, consistently) no longer matches
-- what was signed.
--
-- heads: the heads covered, zlib-compressed canonical JSON [[run_id, seq, head], ...]
-- sorted by run id (keel.store.heads.pack_heads), one value per checkpoint: a
-- checkpoint of 100,000 runs is one row of a few megabytes, written and read at once
-- (it is only ever verified whole), not 100,000 rows. runs: how many heads it holds.
-- workflow: the workflow whose runs it covers (NULL: every run), a label for people:
-- what is signed is the heads themselves. signature: the Signature's JSON.
CREATE TABLE checkpoints (
    id        bigserial PRIMARY KEY,
    at        double precision NOT NULL,
    by        text,
    workflow  text,
    key_id    text NOT NULL,
    signature text NOT NULL,
    runs      integer NOT NULL,
    heads     bytea NOT NULL
);

-- The public keys that signed something here (checkpoints, approvals), by key id, so
-- an export can carry them; trusting one is the operator's choice ([audit]
-- trusted_keys), never this table's: whoever can write here could add their own.
CREATE TABLE audit_keys (
    key_id     text COLLATE "C" PRIMARY KEY,
    public_key text NOT NULL,
    first_used double precision NOT NULL
);
