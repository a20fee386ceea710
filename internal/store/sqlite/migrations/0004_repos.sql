-- Schema version 4: repository bindings.
--
-- Same conventions as 0001: STRICT, times as fixed-width UTC text.
--
-- A binding's status (what gitsync last saw) is a JSON column of its own:
-- it has one writer (gitsync), changes every pass, and is never queried
-- into. every_ns is the listing period in nanoseconds, 0 for the server's
-- default. Sandboxes refer to a binding by name in their spec (spec.git.repo),
-- not by a foreign key: removing a binding may keep its sandboxes.

CREATE TABLE repos (
    name       TEXT    NOT NULL PRIMARY KEY,
    url        TEXT    NOT NULL,
    template   TEXT    NOT NULL,
    every_ns   INTEGER NOT NULL CHECK (every_ns >= 0),
    created_by TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    status     TEXT    NOT NULL
) STRICT;
