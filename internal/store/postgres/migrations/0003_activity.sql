-- Schema version 3: lifecycle (as the SQLite adapter's 0003_activity.sql).
--
-- last_activity_at is when a sandbox was last used (a request through the
-- endpoint proxy, an open logs/exec/port-forward session). It is a column
-- of its own, not part of spec or status, because it has its own writer
-- (the server's activity recorder) and changes far more often than either;
-- NULL until the first activity.

ALTER TABLE sandboxes ADD COLUMN last_activity_at timestamptz;
