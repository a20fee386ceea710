-- Schema version 3: lifecycle.
--
-- last_activity_at is when a sandbox was last used (a request through the
-- endpoint proxy, an open logs/exec/port-forward session), in the same
-- fixed-width UTC text as every other time, so that "only forward" is a
-- plain string comparison. It is a column of its own, not part of spec or
-- status, because it has its own writer (the server's activity recorder)
-- and changes far more often than either; NULL until the first activity.

ALTER TABLE sandboxes ADD COLUMN last_activity_at TEXT;
