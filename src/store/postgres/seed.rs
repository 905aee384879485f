//! The PostgreSQL backend's bulk seeding (see [`crate::store::seed`]): a batch is one
//! transaction of `COPY ... FROM STDIN` (text format), one per table.

use sqlx::postgres::PgConnection;
use time::format_description::well_known::Rfc3339;

use super::*;
use crate::store::seed::{SeedBatch, SeedStore};

#[async_trait]
impl SeedStore for PostgresStore {
    async fn seed(&self, batch: SeedBatch) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut rows = CopyRows::default();
        for c in &batch.customers {
            rows.uuid(*c.id.as_uuid()).text(&c.email).text(&c.company_name).text(c.status.as_str());
            rows.text(c.tier.as_str()).time(c.created_at).end();
        }
        copy(
            &mut tx,
            "customers (id, email, company_name, status, subscription_tier, created_at)",
            rows.take(),
        )
        .await?;
        for c in &batch.credentials {
            rows.uuid(*c.id.as_uuid()).uuid(*c.customer_id.as_uuid()).text(c.provider.as_str());
            rows.text(c.name.as_str()).text(c.credential_type.as_str()).text(c.permissions.as_str());
            rows.flag(c.is_verified).optional_time(c.last_verified_at).optional_time(c.last_used_at);
            rows.integer(c.usage_count).time(c.created_at).time(c.updated_at).integer(1).integer(1);
            rows.time(c.created_at).end();
        }
        copy(
            &mut tx,
            "cloud_credentials (id, customer_id, provider, credential_name, credential_type, permissions, \
             is_verified, last_verified_at, last_used_at, usage_count, created_at, updated_at, current_version, \
             latest_version, rotated_at)",
            rows.take(),
        )
        .await?;
        for c in &batch.credentials {
            rows.uuid(*c.id.as_uuid()).integer(1).text("enabled").bytes(&c.sealed);
            rows.optional_integer(c.key_version.map(i64::from)).time(c.created_at).end();
        }
        copy(
            &mut tx,
            "credential_versions (credential_id, version, state, encrypted_credentials, key_version, created_at)",
            rows.take(),
        )
        .await?;
        for (row, _) in &batch.audit {
            let e = &row.event;
            rows.uuid(e.id).optional_uuid(e.credential_id.map(|c| *c.as_uuid()));
            rows.optional_uuid(e.customer_id.map(|c| *c.as_uuid())).text(&e.action).text(&e.details);
            rows.optional_text(e.ip_address.as_deref()).optional_text(e.actor.as_deref()).time(e.created_at);
            rows.optional_bytes(row.row_mac.as_deref()).end();
        }
        copy(
            &mut tx,
            "credential_audit_log (id, credential_id, customer_id, action, action_details, ip_address, actor, \
             created_at, row_mac)",
            rows.take(),
        )
        .await?;
        for (_, link) in &batch.audit {
            rows.integer(link.seq).uuid(link.audit_id).bytes(&link.hash).end();
        }
        copy(&mut tx, "audit_chain (seq, audit_id, hash)", rows.take()).await?;
        if !batch.audit.is_empty() {
            // The sealer's next pass starts at the transactions after this one.
            let head = &batch.head;
            sqlx::query(
                "UPDATE audit_seal SET seq = $1, hash = $2, mac = $3, \
                 next_tx = pg_current_xact_id()::text::bigint + 1, next_id = NULL, updated_at = now() WHERE id = 1",
            )
            .bind(head.seq)
            .bind(&head.hash)
            .bind(&head.mac)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Streams `data` (rows in COPY's text format) into `table (columns)`.
async fn copy(connection: &mut PgConnection, table: &str, data: Vec<u8>) -> Result<(), StoreError> {
    if data.is_empty() {
        return Ok(());
    }
    let mut copy = connection.copy_in_raw(&format!("COPY {table} FROM STDIN")).await?;
    copy.send(data).await?;
    copy.finish().await?;
    Ok(())
}

/// Rows in `COPY`'s text format: columns separated by tabs, `\N` for NULL, backslash escapes.
#[derive(Default)]
struct CopyRows {
    data: Vec<u8>,
    /// Whether the current row has a column yet.
    started: bool,
}

impl CopyRows {
    fn column(&mut self) -> &mut Vec<u8> {
        if std::mem::replace(&mut self.started, true) {
            self.data.push(b'\t');
        }
        &mut self.data
    }

    fn text(&mut self, value: &str) -> &mut Self {
        let data = self.column();
        for byte in value.bytes() {
            match byte {
                b'\\' => data.extend_from_slice(b"\\\\"),
                b'\t' => data.extend_from_slice(b"\\t"),
                b'\n' => data.extend_from_slice(b"\\n"),
                b'\r' => data.extend_from_slice(b"\\r"),
                other => data.push(other),
            }
        }
        self
    }

    fn null(&mut self) -> &mut Self {
        self.column().extend_from_slice(b"\\N");
        self
    }

    fn optional_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    fn uuid(&mut self, value: Uuid) -> &mut Self {
        self.text(value.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
    }

    fn optional_uuid(&mut self, value: Option<Uuid>) -> &mut Self {
        match value {
            Some(value) => self.uuid(value),
            None => self.null(),
        }
    }

    fn integer(&mut self, value: i64) -> &mut Self {
        self.text(&value.to_string())
    }

    fn optional_integer(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(value) => self.integer(value),
            None => self.null(),
        }
    }

    fn flag(&mut self, value: bool) -> &mut Self {
        self.text(if value { "t" } else { "f" })
    }

    fn time(&mut self, value: OffsetDateTime) -> &mut Self {
        let text =
            to_stored_precision(value).format(&Rfc3339).expect("an OffsetDateTime formats as RFC 3339");
        self.text(&text)
    }

    fn optional_time(&mut self, value: Option<OffsetDateTime>) -> &mut Self {
        match value {
            Some(value) => self.time(value),
            None => self.null(),
        }
    }

    /// bytea's hex form, its backslash escaped for COPY.
    fn bytes(&mut self, value: &[u8]) -> &mut Self {
        let data = self.column();
        data.extend_from_slice(b"\\\\x");
        data.extend_from_slice(hex::encode(value).as_bytes());
        self
    }

    fn optional_bytes(&mut self, value: Option<&[u8]>) -> &mut Self {
        match value {
            Some(value) => self.bytes(value),
            None => self.null(),
        }
    }

    fn end(&mut self) {
        self.data.push(b'\n');
        self.started = false;
    }

    /// The rows so far; starts over empty.
    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_escape_text_and_write_null_and_bytea() {
        let mut rows = CopyRows::default();
        rows.text("a\tb\\c\nd").null().bytes(&[0xde, 0xad]).flag(true).end();
        rows.integer(-7).optional_text(None).end();
        assert_eq!(rows.take(), b"a\\tb\\\\c\\nd\t\\N\t\\\\xdead\tt\n-7\t\\N\n".to_vec());
        assert!(rows.take().is_empty());
    }
}
