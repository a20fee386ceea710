-- Schema version 2: data snapshots (as the SQLite adapter's
-- 0002_snapshots.sql).
--
-- The source is kept as columns rather than JSON because UpdateSnapshot
-- changes two of its fields (format and database, learnt while importing)
-- and must leave the others alone; columns make that a plain UPDATE.
--
-- source_sandbox_id is deliberately not a foreign key to sandboxes: a
-- snapshot outlives the sandbox it was captured from.
--
-- handle is NULL when the runtime has recorded none (the store never keeps
-- an empty value, so NULL is the only "no handle").
--
-- The UNIQUE constraint's index on name serves GetSnapshotByName and the
-- ORDER BY name of ListSnapshots; no other query needs one.

CREATE TABLE snapshots (
    id                text COLLATE "C" NOT NULL,
    name              text COLLATE "C" NOT NULL,
    type              text             NOT NULL,
    version           text             NOT NULL,
    phase             text             NOT NULL,
    message           text             NOT NULL,
    size_bytes        bigint           NOT NULL CHECK (size_bytes >= 0),
    method            text             NOT NULL,
    source_kind       text             NOT NULL,
    source_sandbox    text             NOT NULL,
    source_sandbox_id text             NOT NULL,
    source_dependency text             NOT NULL,
    source_file       text             NOT NULL,
    source_format     text             NOT NULL,
    source_database   text             NOT NULL,
    created_by        text             NOT NULL,
    created_at        timestamptz      NOT NULL,
    ready_at          timestamptz,
    handle            bytea,
    CONSTRAINT snapshots_pkey PRIMARY KEY (id),
    CONSTRAINT snapshots_name_key UNIQUE (name)
);
