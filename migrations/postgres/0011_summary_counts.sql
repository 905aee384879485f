-- Summary counts a customer's credentials per provider in SQL (store/sql.rs, SUMMARY_COUNTS).
-- This index carries every column the count looks at, so the count is an index-only scan: for a
-- customer with 10,000 credentials among 1,000,000, 2.6 ms instead of 6.3 ms (a bitmap heap scan
-- of 1,410 pages). It changes with what it counts, never with a Get.
CREATE INDEX cloud_credentials_summary ON cloud_credentials (customer_id, provider)
    INCLUDE (is_active, is_verified, current_version, purged_at, failing_since, verification_findings);
