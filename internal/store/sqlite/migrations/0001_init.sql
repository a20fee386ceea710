-- Schema version 1.
--
-- Times are TEXT in UTC with a fixed width (2006-01-02T15:04:05.000000Z), so
-- that comparing and ordering the text orders the instants and the file stays
-- readable with the sqlite3 shell. Tables are STRICT so that a bug binding the
-- wrong Go type fails loudly instead of being stored with an odd affinity.

CREATE TABLE templates (
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version > 0),
    source     BLOB    NOT NULL,
    filename   TEXT    NOT NULL,
    base_dir   TEXT    NOT NULL,
    digest     TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

CREATE TABLE sandboxes (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    spec       TEXT    NOT NULL CHECK (json_valid(spec)),
    status     TEXT    NOT NULL CHECK (json_valid(status)),
    -- phase and template copy status.phase and spec.template so that
    -- filtering and per-phase metrics use an index instead of parsing JSON.
    phase      TEXT    NOT NULL,
    template   TEXT    NOT NULL,
    generation INTEGER NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
) STRICT;

CREATE INDEX sandboxes_created ON sandboxes (created_at, id);
CREATE INDEX sandboxes_template ON sandboxes (template);
CREATE INDEX sandboxes_phase ON sandboxes (phase);

-- AUTOINCREMENT (not just INTEGER PRIMARY KEY) so that a seq is never handed
-- out twice, even after the newest events were deleted with their sandbox: an
-- event stream reader resuming "after seq N" must never skip a new event.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox_id  TEXT    NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    time        TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    duration_ms REAL    NOT NULL
) STRICT;

CREATE INDEX events_sandbox ON events (sandbox_id, seq);

-- Deliberately not a foreign key to sandboxes: a runtime keeps its handle
-- after the sandbox row is gone until it has torn down what the handle
-- describes, so a crash between the two is recoverable.
CREATE TABLE handles (
    sandbox_id TEXT NOT NULL PRIMARY KEY,
    runtime    TEXT NOT NULL,
    data       BLOB NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE INDEX handles_runtime ON handles (runtime);
