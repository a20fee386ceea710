-- Schema version 5: what a repository binding knows of GitHub (as the
-- SQLite adapter's 0005_repo_github.sql).
--
-- github is the repository's OWNER/NAME when its URL does not say it ('':
-- parsed from the URL). webhook_secret keys the HMAC of webhook deliveries;
-- it is stored as it is, in plaintext (encrypting secrets at rest is later
-- work).

ALTER TABLE repos ADD COLUMN github text NOT NULL DEFAULT '';
ALTER TABLE repos ADD COLUMN webhook_secret text NOT NULL DEFAULT '';
ALTER TABLE repos ADD COLUMN allow_fork_secrets boolean NOT NULL DEFAULT false;
