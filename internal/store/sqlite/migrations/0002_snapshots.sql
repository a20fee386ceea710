-- Schema version 2: data snapshots.
--
-- Same conventions as 0001: STRICT, times as fixed-width UTC text.
--
-- The source is kept as columns rather than JSON because UpdateSnapshot
-- changes two of its fields (format and database, learnt while importing)
-- and must leave the others alone; columns make that a plain UPDATE.
--
-- source_sandbox_id is deliberately not a foreign key to sandboxes: a
-- snapshot outlives the sandbox it was captured from.
--
-- handle is NULL when the runtime has recorded none (the store never keeps
-- an empty blob, so NULL is the only "no handle").
--
-- The UNIQUE constraint's index on name serves GetSnapshotByName and the
-- ORDER BY name of ListSnapshots; no other query needs one.

CREATE TABLE snapshots (
    id                TEXT    NOT NULL PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    type              TEXT    NOT NULL,
    version           TEXT    NOT NULL,
    phase             TEXT    NOT NULL,
    message           TEXT    NOT NULL,
    size_bytes        INTEGER NOT NULL CHECK (size_bytes >= 0),
    method            TEXT    NOT NULL,
    source_kind       TEXT    NOT NULL,
    source_sandbox    TEXT    NOT NULL,
    source_sandbox_id TEXT    NOT NULL,
    source_dependency TEXT    NOT NULL,
    source_file       TEXT    NOT NULL,
    source_format     TEXT    NOT NULL,
    source_database   TEXT    NOT NULL,
    created_by        TEXT    NOT NULL,
    created_at        TEXT    NOT NULL,
    ready_at          TEXT,
    handle            BLOB
) STRICT;
