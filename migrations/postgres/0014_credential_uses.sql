-- A Get's use is counted in a narrow table of its own instead of in its credential's row.
-- Updating `cloud_credentials.usage_count` and `last_used_at` on every Get wrote a new version of
-- the credential's whole row, and cleared its page's all-visible bit: Summary's count (an
-- index-only scan since 0011) then read the table for every such page. VACUUM did not always
-- restore the bit: where a page was full the update could not stay on it (not HOT), leaving a
-- dead line pointer there and new entries in every index of the table, and while such pages are
-- under 2% of the table VACUUM skips index cleanup, so they are never all-visible again. On
-- 1,000,000 credentials, after a minute of Gets, the count for a customer with 10,000 fetched
-- 9,948 of its rows from the table, VACUUM or not; now it fetches none.
--
-- A Get now locks its credential's row (a lock leaves the all-visible bit alone; it clears only
-- all-frozen), checks the claim on it, and adds to the credential's row here. Only a Get holding
-- that lock writes a credential's row here.
--
-- A credential's usage is its stored `usage_count` plus `uses` here, and the later of the two
-- `last_used_at`: counts stored before this version (and those an import or a seed writes) stay
-- where they are, so the upgrade moves nothing.
CREATE TABLE credential_uses (
    credential_id uuid PRIMARY KEY REFERENCES cloud_credentials (id) ON DELETE CASCADE,
    uses          bigint NOT NULL,
    last_used_at  timestamptz NOT NULL
) WITH (fillfactor = 70);
