-- Schema version 6: usage intervals (as the SQLite adapter's
-- 0006_usage.sql).
--
-- One row per stretch of time a sandbox spent in one usage state (running
-- or suspended; see sandbox.UsageOf) under one name, template and owner.
-- The store writes them itself, in the transactions of CreateSandbox,
-- UpdateStatus, UpdateSpec/RenameSandbox and DeleteSandbox (each of which
-- first locks the sandbox's row, so one sandbox's intervals are written one
-- transaction at a time, whichever replica writes). They are deliberately
-- not a foreign key to sandboxes: they are the durable usage record and
-- outlive the sandbox (DeleteSandbox only closes the open one). ended_at is
-- NULL while the interval is open; a sandbox has at most one open interval.

CREATE TABLE usage_intervals (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    sandbox_id text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    template   text COLLATE "C" NOT NULL,
    owner      text COLLATE "C" NOT NULL,
    state      text             NOT NULL CHECK (state IN ('running', 'suspended')),
    idle       boolean          NOT NULL,
    started_at timestamptz      NOT NULL,
    ended_at   timestamptz      CHECK (ended_at IS NULL OR ended_at >= started_at),
    CONSTRAINT usage_intervals_pkey PRIMARY KEY (id)
);

CREATE UNIQUE INDEX usage_intervals_open ON usage_intervals (sandbox_id) WHERE ended_at IS NULL;
CREATE INDEX usage_intervals_started ON usage_intervals (started_at);
CREATE INDEX usage_intervals_ended ON usage_intervals (ended_at);

-- Sandboxes that exist already are running or suspended from now on: what
-- they did before this version was not recorded, and is not invented.
INSERT INTO usage_intervals (sandbox_id, name, template, owner, state, idle, started_at)
SELECT id, name, template,
       COALESCE(NULLIF(spec->>'created_by', ''), 'unknown'),
       CASE WHEN phase = 'Suspended' THEN 'suspended' ELSE 'running' END,
       phase = 'Suspended' AND left(COALESCE(status->>'suspend_reason', ''), 4) = 'idle',
       date_trunc('microseconds', now())
FROM sandboxes;
