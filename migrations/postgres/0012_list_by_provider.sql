-- List by provider (the dashboard's "Show more", Summary's newest credentials of each provider)
-- walked the customer's index by time and skipped the other providers' rows: for a provider
-- with few of a customer's 10,000 credentials, every one of them was read (~2.4 ms, more for a
-- later page). This index leads with the provider and keeps List's order after it, so such a
-- page is read from where it starts (~0.8 ms). Its columns never change once a credential is
-- stored.
CREATE INDEX cloud_credentials_by_provider ON cloud_credentials (customer_id, provider, created_at DESC, id DESC);
