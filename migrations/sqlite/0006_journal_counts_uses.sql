-- From this version on, a Get no longer adds to cloud_credentials.usage_count and last_used_at
-- when it commits: its row in credential_use_journal is the count, and every move of the
-- journal into the audit log adds the journal's uses to each credential's stored count, in the
-- same transaction. A credential's usage is its stored count plus its rows still in the
-- journal; the store reads it that way. Updating the credential's row on every Get dirtied one
-- random page of the credentials table per use, in the one serial commit every Get waits for.
--
-- Rows journaled before this version were already counted. They move here, without being
-- counted again.
INSERT INTO credential_audit_log
    (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac)
SELECT id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac
FROM credential_use_journal ORDER BY seq;

DELETE FROM credential_use_journal;
