-- Schema version 5: what a repository binding knows of GitHub.
--
-- github is the repository's OWNER/NAME when its URL does not say it ('':
-- parsed from the URL). webhook_secret keys the HMAC of webhook deliveries;
-- it is stored as it is, in plaintext (encrypting secrets at rest is later
-- work). allow_fork_secrets is 0 or 1.

ALTER TABLE repos ADD COLUMN github TEXT NOT NULL DEFAULT '';
ALTER TABLE repos ADD COLUMN webhook_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE repos ADD COLUMN allow_fork_secrets INTEGER NOT NULL DEFAULT 0 CHECK (allow_fork_secrets IN (0, 1));
