-- Summary counts a customer's credentials per provider in SQL (store/sql.rs, SUMMARY_COUNTS).
-- By the index on (customer_id, created_at, id) alone, that read every credential's row from
-- the table: ~11 ms for a customer with 10,000 credentials among 1,000,000. This index carries
-- every column the count looks at, in the count's grouping order, so the count reads only the
-- index: ~3 ms. It changes with what it counts (a new credential, a delete, restore or purge, a
-- rotation, a verification), never with a Get or the use journal's moves (usage_count and
-- last_used_at are not in it).
CREATE INDEX cloud_credentials_summary ON cloud_credentials
    (customer_id, provider, is_active, is_verified, current_version, purged_at, failing_since, verification_findings);
