-- Schema version 4: repository bindings (as the SQLite adapter's
-- 0004_repos.sql).
--
-- A binding's status (what gitsync last saw) is a json column of its own:
-- it has one writer (gitsync), changes every pass, and is never queried
-- into. every_ns is the listing period in nanoseconds, 0 for the server's
-- default. Sandboxes refer to a binding by name in their spec (spec.git.repo),
-- not by a foreign key: removing a binding may keep its sandboxes.

CREATE TABLE repos (
    name       text COLLATE "C" NOT NULL,
    url        text             NOT NULL,
    template   text             NOT NULL,
    every_ns   bigint           NOT NULL CHECK (every_ns >= 0),
    created_by text             NOT NULL,
    created_at timestamptz      NOT NULL,
    status     json             NOT NULL,
    CONSTRAINT repos_pkey PRIMARY KEY (name)
);
