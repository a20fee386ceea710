-- Schema version 1: the same tables as the SQLite adapter's 0001_init.sql,
-- in PostgreSQL types.
--
-- Times are timestamptz (microseconds, as the store's contract says).
-- Identifiers and names are COLLATE "C" so that ORDER BY name and
-- ORDER BY created_at, id sort by bytes, as SQLite's BINARY collation does
-- and as the conformance suite expects, whatever the database's locale is.
-- spec and status are json, not jsonb: json keeps the text exactly as
-- written and accepts \u0000, which jsonb refuses (a status message may
-- quote a program's output); nothing queries into them.

CREATE TABLE templates (
    name       text COLLATE "C" NOT NULL,
    version    integer          NOT NULL CHECK (version > 0),
    source     bytea            NOT NULL,
    filename   text             NOT NULL,
    base_dir   text             NOT NULL,
    digest     text             NOT NULL,
    created_at timestamptz      NOT NULL,
    created_by text             NOT NULL,
    CONSTRAINT templates_pkey PRIMARY KEY (name, version)
);

CREATE TABLE sandboxes (
    id         text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    spec       json             NOT NULL,
    status     json             NOT NULL,
    -- phase and template copy status.phase and spec.template so that
    -- filtering and per-phase metrics use an index instead of parsing JSON.
    phase      text             NOT NULL,
    template   text COLLATE "C" NOT NULL,
    generation bigint           NOT NULL,
    created_at timestamptz      NOT NULL,
    updated_at timestamptz      NOT NULL,
    CONSTRAINT sandboxes_pkey PRIMARY KEY (id),
    CONSTRAINT sandboxes_name_key UNIQUE (name)
);

CREATE INDEX sandboxes_created ON sandboxes (created_at, id);
CREATE INDEX sandboxes_template ON sandboxes (template);
CREATE INDEX sandboxes_phase ON sandboxes (phase);

-- An identity column's sequence never hands a value out twice, even after
-- the newest events were deleted with their sandbox. That alone does not
-- make seq order commit order when several transactions insert at once;
-- AppendEvent takes a transaction-level advisory lock for that (see
-- events.go).
CREATE TABLE events (
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    sandbox_id  text COLLATE "C" NOT NULL,
    time        timestamptz      NOT NULL,
    type        text             NOT NULL,
    reason      text             NOT NULL,
    stage       text             NOT NULL,
    message     text             NOT NULL,
    duration_ms double precision NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (seq),
    CONSTRAINT events_sandbox_id_fkey FOREIGN KEY (sandbox_id) REFERENCES sandboxes (id) ON DELETE CASCADE
);

CREATE INDEX events_sandbox ON events (sandbox_id, seq);

-- Deliberately not a foreign key to sandboxes: a runtime keeps its handle
-- after the sandbox row is gone until it has torn down what the handle
-- describes, so a crash between the two is recoverable.
CREATE TABLE handles (
    sandbox_id text COLLATE "C" NOT NULL,
    runtime    text             NOT NULL,
    data       bytea            NOT NULL,
    updated_at timestamptz      NOT NULL,
    CONSTRAINT handles_pkey PRIMARY KEY (sandbox_id)
);

CREATE INDEX handles_runtime ON handles (runtime);
