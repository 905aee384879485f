//! Group commit (see [`crate::store::group_commit`]) on PostgreSQL, for Get's audited use and for Store.
//! A write as its own statement costs PostgreSQL a transaction, a commit record and a log flush,
//! and credvault a round trip; under load those, not the update and the inserts, were most of
//! the cost. A group is ONE statement whatever its size.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{AuditSigner, CredentialMetadata, TokenName};
use crate::store::StoreError;
use crate::store::group_commit::{NewStore, Recorder, Use};
use crate::store::rows;
use crate::store::sql::to_stored_precision;

/// The CTEs that add `$counts` (a query of credential id, uses, time; one row per credential,
/// each locked by this transaction) to `credential_uses`, ending in `used` (credential id, uses
/// and last use, as they are now). A credential's row there is updated in place when the
/// statement's snapshot has it; otherwise inserted, and a row that a Get committed after the
/// snapshot was taken (before this one had the lock) is found by the insert's conflict and
/// updated there. Updating first spares the common case the insert's speculative path (a
/// conflict check, then a lock of the row, then the update).
macro_rules! counting_uses {
    ($counts:literal) => {
        concat!(
            "counts (id, n, used_at) AS (",
            $counts,
            "), \
             bumped AS (UPDATE credential_uses AS u SET uses = u.uses + counts.n, \
                 last_used_at = greatest(u.last_used_at, counts.used_at) FROM counts \
                 WHERE u.credential_id = counts.id RETURNING u.credential_id, u.uses, u.last_used_at), \
             added AS (INSERT INTO credential_uses AS u (credential_id, uses, last_used_at) \
                 SELECT id, n, used_at FROM counts \
                 WHERE id NOT IN (SELECT credential_id FROM bumped) \
                 ON CONFLICT (credential_id) DO UPDATE SET uses = u.uses + excluded.uses, \
                 last_used_at = greatest(u.last_used_at, excluded.last_used_at) \
                 RETURNING credential_id, uses, last_used_at), \
             used AS (SELECT * FROM bumped UNION ALL SELECT * FROM added)"
        )
    };
}

/// Whether a query could have a connection now without waiting: one is idle, or the pool may
/// open another.
fn pool_has_room(pool: &PgPool) -> bool {
    pool.num_idle() > 0 || pool.size() < pool.options().get_max_connections()
}

/// Commits groups of Get's uses.
pub(super) struct UseCommitter {
    pub(super) pool: PgPool,
    pub(super) signer: Option<Arc<dyn AuditSigner>>,
}

#[async_trait]
impl Recorder for UseCommitter {
    const NAME: &'static str = "postgres_uses";
    type Item = Use;
    type Outcome = Option<CredentialMetadata>;
    type Session = PoolConnection<Postgres>;

    async fn open(&self) -> Result<Self::Session, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    fn session_keeps_nobody_out(&self) -> bool {
        pool_has_room(&self.pool)
    }

    async fn record(
        &self,
        conn: &mut Self::Session,
        batch: &[Use],
    ) -> Result<Vec<Option<CredentialMetadata>>, StoreError> {
        if let [one] = batch {
            return Ok(vec![self.record_one(conn, one).await?]);
        }
        let now =
            to_stored_precision(batch.iter().map(|u| u.now).max().expect("a group holds at least one use"));
        let mut claims = Claims::default();
        for u in batch {
            claims.push(Claim::of(self.signer.as_deref(), u));
        }
        // A claim counts, and gets its audit row, only if the row still holds: the version is
        // enabled and holds the same ciphertext; the credential has the same owner and (for a
        // cached copy) etag, is active, and its customer is in good standing. The rows are
        // locked in id order first, so groups (of this instance or another) that share
        // credentials cannot deadlock; the etag is compared with what the lock returns, the
        // newest committed row (every change of the versions changes it, so a cached version
        // cannot be stale unnoticed). The lock is what every change of the row waits for; the
        // row itself is not written (the uses go to `credential_uses`, whose rows only a Get
        // holding its credential's lock writes, so they need no order of their own). Claims on
        // one credential with the same owner count together, in one upsert of its uses.
        let rows = sqlx::query(concat!(
            "WITH claims AS (SELECT * FROM unnest($1::int[], $2::uuid[], $3::uuid[], $4::bigint[], $5::uuid[], \
                   $6::text[], $7::text[], $8::inet[], $9::text[], $10::timestamptz[], $11::bytea[], \
                   $13::bigint[], $14::bytea[]) \
                 AS c(claim_no, credential_id, customer_id, revision, audit_id, action, details, ip, actor, at_time, \
                      mac, version, sealed)), \
             locked AS (SELECT ",
            stored_credential_columns!(""),
            ", usage_count, last_used_at, \
                   (SELECT status FROM customers WHERE customers.id = cloud_credentials.customer_id) AS standing \
                 FROM cloud_credentials WHERE id IN (SELECT credential_id FROM claims) \
                 ORDER BY id FOR NO KEY UPDATE), \
             valid AS (SELECT c.* FROM claims c JOIN locked l ON l.id = c.credential_id \
                 WHERE (c.revision IS NULL OR c.revision = l.revision) \
                 AND EXISTS (SELECT 1 FROM credential_versions v WHERE v.credential_id = c.credential_id \
                 AND v.version = c.version AND v.state = 'enabled' AND v.encrypted_credentials = c.sealed)), \
             uses AS (SELECT row_number() OVER () AS use_no, credential_id, customer_id, count(*) AS n \
                 FROM valid GROUP BY credential_id, customer_id), \
             claimed AS (SELECT uses.use_no, uses.n, l.* FROM uses JOIN locked l \
                 ON l.id = uses.credential_id AND l.customer_id = uses.customer_id \
                 WHERE l.is_active AND l.standing IN ",
            good_standing_sql!(),
            "), ",
            counting_uses!("SELECT id, n, $12 FROM claimed"),
            ", \
             counted AS (SELECT c.*, cl.use_no FROM valid c JOIN uses u \
                 ON (u.credential_id, u.customer_id) = (c.credential_id, c.customer_id) \
                 JOIN claimed cl ON cl.use_no = u.use_no), \
             audit AS (INSERT INTO credential_audit_log \
                 (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac) \
                 SELECT audit_id, credential_id, customer_id, action, details, ip, actor, at_time, mac FROM counted) \
             SELECT counted.claim_no, ",
            stored_credential_columns!("claimed."),
            ", ",
            usage_columns!("claimed.", "used."),
            " FROM counted JOIN claimed USING (use_no) JOIN used ON used.credential_id = claimed.id"
        ))
        .bind(claims.no)
        .bind(claims.credential_id)
        .bind(claims.customer_id)
        .bind(claims.revision)
        .bind(claims.audit_id)
        .bind(claims.action)
        .bind(claims.details)
        .bind(claims.ip)
        .bind(claims.actor)
        .bind(claims.at)
        .bind(claims.mac)
        .bind(now)
        .bind(claims.version)
        .bind(claims.sealed)
        .fetch_all(&mut **conn)
        .await?;
        let mut outcomes = vec![None; batch.len()];
        for row in &rows {
            let no: i32 = row.try_get("claim_no")?;
            let slot = usize::try_from(no)
                .ok()
                .and_then(|no| outcomes.get_mut(no))
                .ok_or_else(|| StoreError::Other(format!("group commit answered for claim {no}").into()))?;
            *slot = Some(rows::metadata(row)?);
        }
        Ok(outcomes)
    }
}

impl UseCommitter {
    /// A group of one (a client fetching one key at a time): the same claim as a group's, as a
    /// statement over one claim's values instead of a table of claims, which PostgreSQL runs in
    /// a fraction of the time (no arrays to unnest, nothing to group or join back). One row, so
    /// no lock order to keep.
    async fn record_one(
        &self,
        conn: &mut PoolConnection<Postgres>,
        u: &Use,
    ) -> Result<Option<CredentialMetadata>, StoreError> {
        let claim = Claim::of(self.signer.as_deref(), u);
        let row = sqlx::query(concat!(
            "WITH claimed AS (SELECT ",
            stored_credential_columns!("cred."),
            ", cred.usage_count, cred.last_used_at FROM cloud_credentials AS cred \
                 WHERE cred.id = $1 AND cred.customer_id = $2 AND ($3::bigint IS NULL OR cred.revision = $3) \
                 AND cred.is_active AND EXISTS (SELECT 1 FROM credential_versions v WHERE v.credential_id = $1 \
                 AND v.version = $11 AND v.state = 'enabled' AND v.encrypted_credentials = $12) \
                 AND (SELECT status FROM customers WHERE customers.id = cred.customer_id) IN ",
            good_standing_sql!(),
            " FOR NO KEY UPDATE), ",
            counting_uses!("SELECT id, 1, $10 FROM claimed"),
            ", \
             audit AS (INSERT INTO credential_audit_log \
                 (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac) \
                 SELECT $4, id, customer_id, $5, $6, $7::inet, $8, $10, $9 FROM claimed) \
             SELECT ",
            stored_credential_columns!("claimed."),
            ", ",
            usage_columns!("claimed.", "used."),
            " FROM claimed JOIN used ON used.credential_id = claimed.id"
        ))
        .bind(claim.credential_id)
        .bind(claim.customer_id)
        .bind(claim.revision)
        .bind(claim.audit_id)
        .bind(claim.action)
        .bind(claim.details)
        .bind(claim.ip)
        .bind(claim.actor)
        .bind(claim.mac)
        .bind(claim.at)
        .bind(claim.version)
        .bind(claim.sealed)
        .fetch_optional(&mut **conn)
        .await?;
        row.as_ref().map(rows::metadata).transpose()
    }
}

/// A group's claims and audit rows, one array per column (PostgreSQL's `unnest` takes them).
#[derive(Default)]
struct Claims<'a> {
    no: Vec<i32>,
    credential_id: Vec<Uuid>,
    customer_id: Vec<Uuid>,
    revision: Vec<Option<i64>>,
    version: Vec<i64>,
    sealed: Vec<&'a [u8]>,
    audit_id: Vec<Uuid>,
    action: Vec<&'static str>,
    details: Vec<&'a str>,
    ip: Vec<Option<String>>,
    actor: Vec<Option<&'a str>>,
    at: Vec<OffsetDateTime>,
    mac: Vec<Option<Vec<u8>>>,
}

/// One claim's values, as its statement binds them.
struct Claim<'a> {
    credential_id: Uuid,
    customer_id: Uuid,
    revision: Option<i64>,
    version: i64,
    sealed: &'a [u8],
    audit_id: Uuid,
    action: &'static str,
    details: &'a str,
    ip: Option<String>,
    actor: Option<&'a str>,
    at: OffsetDateTime,
    mac: Option<Vec<u8>>,
}

impl<'a> Claim<'a> {
    /// `u`'s claim, with its audit row's id, time and MAC.
    fn of(signer: Option<&dyn AuditSigner>, u: &'a Use) -> Self {
        let audit_id = crate::domain::new_audit_row_id();
        let at = to_stored_precision(u.now);
        Self {
            credential_id: *u.claim.id.as_uuid(),
            customer_id: *u.claim.customer_id.as_uuid(),
            revision: u.claim.etag.map(crate::domain::Etag::revision),
            version: i64::from(u.claim.version),
            sealed: &u.claim.sealed,
            audit_id,
            action: u.audit.action.as_str(),
            details: &u.audit.details,
            ip: u.audit.ip_address.map(|ip| ip.to_string()),
            actor: u.audit.actor.as_ref().map(TokenName::as_str),
            at,
            mac: signer.map(|signer| u.audit.to_event(audit_id, at).mac(signer)),
        }
    }
}

impl<'a> Claims<'a> {
    fn push(&mut self, claim: Claim<'a>) {
        self.no.push(i32::try_from(self.no.len()).expect("a group is far smaller than i32::MAX"));
        self.credential_id.push(claim.credential_id);
        self.customer_id.push(claim.customer_id);
        self.revision.push(claim.revision);
        self.version.push(claim.version);
        self.sealed.push(claim.sealed);
        self.audit_id.push(claim.audit_id);
        self.action.push(claim.action);
        self.details.push(claim.details);
        self.ip.push(claim.ip);
        self.actor.push(claim.actor);
        self.at.push(claim.at);
        self.mac.push(claim.mac);
    }
}

/// Commits groups of Stores.
pub(super) struct StoreCommitter {
    pub(super) pool: PgPool,
    pub(super) signer: Option<Arc<dyn AuditSigner>>,
}

#[async_trait]
impl Recorder for StoreCommitter {
    const NAME: &'static str = "postgres_stores";
    type Item = Arc<NewStore>;
    /// `None` for a Store the group did not insert (its customer is missing or not in good
    /// standing, or it conflicts with a stored credential or another Store of the group): the
    /// caller does it on its own, which gives the precise answer. The customer's row is locked
    /// `FOR SHARE` while its standing is read, so a concurrent cancellation commits either
    /// before (and the Store is refused) or after (and deletes what the Store inserted).
    type Outcome = Option<CredentialMetadata>;
    type Session = PoolConnection<Postgres>;

    async fn open(&self) -> Result<Self::Session, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    fn session_keeps_nobody_out(&self) -> bool {
        pool_has_room(&self.pool)
    }

    async fn record(
        &self,
        conn: &mut Self::Session,
        batch: &[Arc<NewStore>],
    ) -> Result<Vec<Option<CredentialMetadata>>, StoreError> {
        let mut items = Items::default();
        for store in batch {
            items.push(self.signer.as_deref(), store);
        }
        // Inserted in (customer, provider, name) order, so that groups inserting the same names
        // wait for each other in one order instead of deadlocking.
        let rows = sqlx::query(concat!(
            "WITH items AS (SELECT * FROM unnest($1::int[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], \
                   $6::bytea[], $7::bigint[], $8::text[], $9::text[], $10::text[], $11::bytea[], \
                   $12::timestamptz[], $13::uuid[], $14::text[], $15::text[], $16::inet[], $17::text[], \
                   $18::bytea[]) \
                 AS i(item_no, id, customer_id, provider, credential_name, sealed, key_version, \
                      credential_type, permissions, idempotency_key, fingerprint, at_time, audit_id, action, \
                      details, ip, actor, mac)), \
             inserted AS (INSERT INTO cloud_credentials (id, customer_id, provider, credential_name, \
                   credential_type, permissions, is_default, idempotency_key, request_fingerprint, \
                   created_at, updated_at, current_version, latest_version, rotated_at) \
                 SELECT id, customer_id, provider, credential_name, credential_type, \
                   permissions, false, idempotency_key, fingerprint, at_time, at_time, 1, 1, at_time FROM items \
                 WHERE EXISTS (SELECT 1 FROM customers WHERE customers.id = items.customer_id \
                   AND customers.status IN ",
            good_standing_sql!(),
            " FOR SHARE) \
                 ORDER BY customer_id, provider, credential_name \
                 ON CONFLICT DO NOTHING RETURNING ",
            credential_columns!(),
            "), versions AS (INSERT INTO credential_versions (credential_id, version, state, \
                   encrypted_credentials, key_version, created_by, created_at) \
                 SELECT items.id, 1, 'enabled', items.sealed, items.key_version, items.actor, items.at_time \
                 FROM items JOIN inserted USING (id)), \
             audit AS (INSERT INTO credential_audit_log \
                 (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac) \
                 SELECT items.audit_id, items.id, items.customer_id, items.action, items.details, items.ip, \
                   items.actor, items.at_time, items.mac FROM items JOIN inserted USING (id)) \
             SELECT items.item_no, ",
            credential_columns!("inserted."),
            " FROM items JOIN inserted USING (id)"
        ))
        .bind(items.no)
        .bind(items.id)
        .bind(items.customer_id)
        .bind(items.provider)
        .bind(items.name)
        .bind(items.sealed)
        .bind(items.key_version)
        .bind(items.credential_type)
        .bind(items.permissions)
        .bind(items.idempotency_key)
        .bind(items.fingerprint)
        .bind(items.at)
        .bind(items.audit_id)
        .bind(items.action)
        .bind(items.details)
        .bind(items.ip)
        .bind(items.actor)
        .bind(items.mac)
        .fetch_all(&mut **conn)
        .await?;
        let mut outcomes = vec![None; batch.len()];
        for row in &rows {
            let no: i32 = row.try_get("item_no")?;
            let slot = usize::try_from(no)
                .ok()
                .and_then(|no| outcomes.get_mut(no))
                .ok_or_else(|| StoreError::Other(format!("group commit answered for Store {no}").into()))?;
            *slot = Some(rows::metadata(row)?);
        }
        Ok(outcomes)
    }
}

/// A group's Stores and their audit rows, one array per column.
#[derive(Default)]
struct Items<'a> {
    no: Vec<i32>,
    id: Vec<Uuid>,
    customer_id: Vec<Uuid>,
    provider: Vec<&'static str>,
    name: Vec<&'a str>,
    sealed: Vec<&'a [u8]>,
    key_version: Vec<Option<i64>>,
    credential_type: Vec<&'a str>,
    permissions: Vec<&'static str>,
    idempotency_key: Vec<Option<&'a str>>,
    fingerprint: Vec<Option<&'a [u8]>>,
    at: Vec<OffsetDateTime>,
    audit_id: Vec<Uuid>,
    action: Vec<&'static str>,
    details: Vec<&'a str>,
    ip: Vec<Option<String>>,
    actor: Vec<Option<&'a str>>,
    mac: Vec<Option<Vec<u8>>>,
}

impl<'a> Items<'a> {
    fn push(&mut self, signer: Option<&dyn AuditSigner>, store: &'a NewStore) {
        let (new, audit) = (&store.new, &store.audit);
        let audit_id = crate::domain::new_audit_row_id();
        let at = to_stored_precision(new.now);
        let (idempotency_key, fingerprint) = super::idempotency(new);
        self.no.push(i32::try_from(self.no.len()).expect("a group is far smaller than i32::MAX"));
        self.id.push(*new.id.as_uuid());
        self.customer_id.push(*new.customer_id.as_uuid());
        self.provider.push(new.provider.as_str());
        self.name.push(new.name.as_str());
        self.sealed.push(&new.sealed);
        self.key_version.push(new.key_version.map(i64::from));
        self.credential_type.push(new.credential_type.as_str());
        self.permissions.push(new.permissions.as_str());
        self.idempotency_key.push(idempotency_key);
        self.fingerprint.push(fingerprint);
        self.at.push(at);
        self.audit_id.push(audit_id);
        self.action.push(audit.action.as_str());
        self.details.push(&audit.details);
        self.ip.push(audit.ip_address.map(|ip| ip.to_string()));
        self.actor.push(audit.actor.as_ref().map(TokenName::as_str));
        self.mac.push(signer.map(|signer| audit.to_event(audit_id, at).mac(signer)));
    }
}
