-- Schema version 6: usage intervals.
--
-- One row per stretch of time a sandbox spent in one usage state (running
-- or suspended; see sandbox.UsageOf) under one name, template and owner.
-- The store writes them itself, in the transactions of CreateSandbox,
-- UpdateStatus, UpdateSpec/RenameSandbox and DeleteSandbox, so they always
-- agree with the phases that were stored. They are deliberately not a
-- foreign key to sandboxes: they are the durable usage record and outlive
-- the sandbox (DeleteSandbox only closes the open one). ended_at is NULL
-- while the interval is open; a sandbox has at most one open interval.
-- idle is 1 for a suspension that idle suspend began.

CREATE TABLE usage_intervals (
    id         INTEGER PRIMARY KEY,
    sandbox_id TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    template   TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('running', 'suspended')),
    idle       INTEGER NOT NULL CHECK (idle IN (0, 1)),
    started_at TEXT    NOT NULL,
    ended_at   TEXT    CHECK (ended_at IS NULL OR ended_at >= started_at)
) STRICT;

CREATE UNIQUE INDEX usage_intervals_open ON usage_intervals (sandbox_id) WHERE ended_at IS NULL;
CREATE INDEX usage_intervals_started ON usage_intervals (started_at);
CREATE INDEX usage_intervals_ended ON usage_intervals (ended_at);

-- Sandboxes that exist already are running or suspended from now on: what
-- they did before this version was not recorded, and is not invented.
INSERT INTO usage_intervals (sandbox_id, name, template, owner, state, idle, started_at)
SELECT id, name, template,
       COALESCE(NULLIF(json_extract(spec, '$.created_by'), ''), 'unknown'),
       CASE WHEN phase = 'Suspended' THEN 'suspended' ELSE 'running' END,
       CASE WHEN phase = 'Suspended' AND substr(COALESCE(json_extract(status, '$.suspend_reason'), ''), 1, 4) = 'idle' THEN 1 ELSE 0 END,
       strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
FROM sandboxes;
