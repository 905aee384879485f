-- Scheduled verification and what verification learns (docs/design/verification.md): the
-- identity a valid answer reported (a JSON object), its findings (a JSON array of
-- {"code", "detail"}), the streak of invalid answers and when it began, when the streak made
-- the credential failing, and when the scheduler verifies the credential next (0: as soon as
-- it can). None of these is a secret.
ALTER TABLE cloud_credentials ADD COLUMN verified_identity TEXT;
ALTER TABLE cloud_credentials ADD COLUMN verification_findings TEXT;
ALTER TABLE cloud_credentials ADD COLUMN verification_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cloud_credentials ADD COLUMN first_failed_at INTEGER;
ALTER TABLE cloud_credentials ADD COLUMN failing_since INTEGER;
ALTER TABLE cloud_credentials ADD COLUMN next_verify_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX cloud_credentials_verify_due ON cloud_credentials (next_verify_at) WHERE is_active = 1;
