//! Queries on outstanding refresh and sliding tokens, their families and
//! the blacklist.
//!
//! Locking order, the same in every transaction so that replicas never
//! deadlock one another: a user's row, then families (by id), then
//! tokens (by jti).

use serde_json::{Value, json};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, Row};

use super::Db;
use crate::clock::UnixTime;
use crate::store::{BatchRead, BatchWrites, NewToken, RecordedType, StoreError, TokenRecord};

/// What is recorded of the token `$1`: a read, no lock.
const TOKEN_RECORD_SQL: &str = "\
    SELECT o.user_id, o.family_id, o.rotated_at, o.replaced_by, \
           b.jti IS NOT NULL AS blacklisted, \
           f.revoked_at IS NOT NULL AS family_revoked, f.created_at AS family_created_at \
    FROM outstanding_tokens o \
    LEFT JOIN blacklisted_tokens b ON b.jti = o.jti \
    LEFT JOIN token_families f ON f.id = o.family_id \
    WHERE o.jti = $1";

/// Locks the families of the tokens in `$1` (an array of jtis), in id
/// order, until the batch ends: a reuse revoking a family and a refresh in
/// that family on another replica take turns.
const LOCK_BATCH_FAMILIES_SQL: &str = "\
    SELECT id FROM token_families \
    WHERE id IN (SELECT family_id FROM outstanding_tokens WHERE jti = ANY($1)) \
    ORDER BY id FOR UPDATE";

/// Reads, and locks until the batch ends, the tokens in `$1`, with whether
/// their user exists and is active: of concurrent refreshes of one token
/// on several replicas, the later ones wait, then read what the first
/// wrote.
const READ_BATCH_SQL: &str = "\
    SELECT o.jti, o.user_id, o.family_id, o.rotated_at, o.replaced_by, \
           b.jti IS NOT NULL AS blacklisted, \
           f.revoked_at IS NOT NULL AS family_revoked, f.created_at AS family_created_at, \
           u.id AS active_user \
    FROM outstanding_tokens o \
    LEFT JOIN blacklisted_tokens b ON b.jti = o.jti \
    LEFT JOIN token_families f ON f.id = o.family_id \
    LEFT JOIN users u ON u.id = o.user_id AND u.is_active \
    WHERE o.jti = ANY($1) \
    ORDER BY o.jti FOR UPDATE OF o";

// A batch's writes, in its transaction: `$1` the time, `$2` the batch as
// one JSON document (lists `new_tokens`, `replaced` as `[old, new]` pairs,
// `blacklisted`, `revoked_families`).

/// The rotated tokens.
const INSERT_ROTATED_SQL: &str = "\
    INSERT INTO outstanding_tokens (jti, user_id, token_type, family_id, created_at, expires_at) \
    SELECT t->>'jti', (t->>'user_id')::bigint, t->>'token_type', t->>'family_id', $1, \
           (t->>'expires_at')::bigint \
    FROM jsonb_array_elements($2::jsonb -> 'new_tokens') AS t";

/// The presented tokens, marked replaced; the grace runs from the first
/// rotation.
const MARK_REPLACED_SQL: &str = "\
    UPDATE outstanding_tokens o SET rotated_at = COALESCE(o.rotated_at, $1), replaced_by = r->>1 \
    FROM jsonb_array_elements($2::jsonb -> 'replaced') AS r \
    WHERE o.jti = r->>0";

/// The tokens the batch blacklists.
const BLACKLIST_BATCH_SQL: &str = "\
    INSERT INTO blacklisted_tokens (jti, blacklisted_at) \
    SELECT jti, $1 FROM jsonb_array_elements_text($2::jsonb -> 'blacklisted') AS jti \
    ON CONFLICT DO NOTHING";

/// The families revoked for reuse, and every token in them (those this
/// batch added included).
const REVOKE_FAMILIES_SQL: &str = "\
    UPDATE token_families SET revoked_at = $1 \
    WHERE revoked_at IS NULL \
      AND id IN (SELECT jsonb_array_elements_text($2::jsonb -> 'revoked_families'))";
const BLACKLIST_FAMILIES_SQL: &str = "\
    INSERT INTO blacklisted_tokens (jti, blacklisted_at) \
    SELECT jti, $1 FROM outstanding_tokens \
    WHERE family_id IN (SELECT jsonb_array_elements_text($2::jsonb -> 'revoked_families')) \
    ON CONFLICT DO NOTHING";

impl Db {
    /// One transaction: the user's `last_login`, the family, the token.
    pub async fn record_login(
        &self,
        token: &NewToken<'_>,
        now: UnixTime,
        touch_last_login: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if touch_last_login {
            touch(&mut tx, token.user_id, now).await?;
        }
        // ON CONFLICT: ids are random, so a conflict is this very login
        // retried after its commit's answer was lost.
        sqlx::query(
            "INSERT INTO token_families (id, user_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(token.family_id)
        .bind(token.user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_token(&mut tx, token, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One transaction: the user's `last_login`, the token.
    pub async fn record_sliding(
        &self,
        token: &NewToken<'_>,
        now: UnixTime,
        touch_last_login: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if touch_last_login {
            touch(&mut tx, token.user_id, now).await?;
        }
        insert_token(&mut tx, token, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn token_record(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        let record = sqlx::query_as(TOKEN_RECORD_SQL)
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        Ok(record)
    }

    pub async fn blacklist(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO blacklisted_tokens (jti, blacklisted_at) \
             SELECT jti, $1 FROM outstanding_tokens WHERE jti = $2 ON CONFLICT DO NOTHING",
        )
        .bind(now)
        .bind(jti)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn logout_all(&self, user_id: i64, now: UnixTime) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let count = blacklist_outstanding(&mut tx, user_id, now).await?;
        tx.commit().await?;
        Ok(count)
    }

    pub async fn flush_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM outstanding_tokens WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM token_families f WHERE NOT EXISTS \
             (SELECT 1 FROM outstanding_tokens o WHERE o.family_id = f.id)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub fn refresh_connection(&self) -> RefreshConnection {
        RefreshConnection {
            db: self.clone(),
            connection: None,
        }
    }
}

/// The refresh writer's connection: a batch is one transaction of seven
/// statements (lock the families, read and lock the tokens, five writes)
/// whatever its size.
pub struct RefreshConnection {
    db: Db,
    /// Taken from the pool for a batch and given back at its commit;
    /// closed after any failure (which rolls back whatever it left open).
    connection: Option<PoolConnection<Postgres>>,
}

/// An open batch: its rows stay locked until [`commit`](Self::commit);
/// dropped without it, the connection is closed and nothing changes.
pub struct RefreshBatch<'c> {
    connection: &'c mut Option<PoolConnection<Postgres>>,
    committed: bool,
}

impl RefreshConnection {
    pub async fn begin(
        &mut self,
        jtis: &[&str],
    ) -> Result<(RefreshBatch<'_>, BatchRead), StoreError> {
        if self.connection.is_none() {
            self.connection = Some(self.db.pool.acquire().await?);
        }
        let mut batch = RefreshBatch {
            connection: &mut self.connection,
            committed: false,
        };
        let connection = batch.connection();
        sqlx::query("BEGIN").execute(&mut *connection).await?;
        sqlx::query(LOCK_BATCH_FAMILIES_SQL)
            .bind(jtis)
            .execute(&mut *connection)
            .await?;
        let rows = sqlx::query(READ_BATCH_SQL)
            .bind(jtis)
            .fetch_all(&mut *connection)
            .await?;
        let mut read = BatchRead::default();
        for row in rows {
            if row.try_get::<Option<i64>, _>("active_user")?.is_some() {
                read.active_users.insert(row.try_get("user_id")?);
            }
            let jti: String = row.try_get("jti")?;
            read.records.insert(jti, sqlx::FromRow::from_row(&row)?);
        }
        Ok((batch, read))
    }
}

impl RefreshBatch<'_> {
    fn connection(&mut self) -> &mut PgConnection {
        self.connection
            .as_mut()
            .expect("a batch is only made with a connection")
    }

    pub async fn commit(mut self, writes: &BatchWrites, now: UnixTime) -> Result<(), StoreError> {
        let new_tokens: Vec<Value> = writes
            .new_tokens
            .iter()
            .map(|token| {
                json!({
                    "jti": token.jti,
                    "user_id": token.user_id,
                    "token_type": RecordedType::Refresh.as_str(),
                    "family_id": token.family_id,
                    "expires_at": token.expires_at,
                })
            })
            .collect();
        let batch = json!({
            "new_tokens": new_tokens,
            "replaced": writes.replaced,
            "blacklisted": writes.blacklisted,
            "revoked_families": writes.revoked_families,
        })
        .to_string();
        let connection = self.connection();
        for sql in [
            INSERT_ROTATED_SQL,
            MARK_REPLACED_SQL,
            BLACKLIST_BATCH_SQL,
            REVOKE_FAMILIES_SQL,
            BLACKLIST_FAMILIES_SQL,
        ] {
            sqlx::query(sql)
                .bind(now)
                .bind(&batch)
                .execute(&mut *connection)
                .await?;
        }
        sqlx::query("COMMIT").execute(&mut *connection).await?;
        self.committed = true;
        // Back to the pool between batches, so closing the pool never
        // waits for an idle writer.
        drop(self.connection.take());
        Ok(())
    }
}

impl Drop for RefreshBatch<'_> {
    /// A batch that did not commit closes its connection (the server rolls
    /// back what a closed connection left open); the next batch takes a
    /// fresh one from the pool.
    fn drop(&mut self) {
        if !self.committed
            && let Some(connection) = self.connection.take()
        {
            drop(connection.detach());
        }
    }
}

/// Ends every session of `user_id` inside the caller's transaction:
/// revokes its families (locking them first, as a refresh batch does),
/// then blacklists each of its outstanding tokens not expired by `now`.
/// Returns how many tokens were newly blacklisted.
pub(super) async fn blacklist_outstanding(
    tx: &mut PgConnection,
    user_id: i64,
    now: UnixTime,
) -> Result<u64, StoreError> {
    sqlx::query(
        "UPDATE token_families SET revoked_at = $1 WHERE id IN \
         (SELECT id FROM token_families WHERE user_id = $2 AND revoked_at IS NULL \
          ORDER BY id FOR UPDATE)",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let done = sqlx::query(
        "INSERT INTO blacklisted_tokens (jti, blacklisted_at) \
         SELECT jti, $1 FROM outstanding_tokens WHERE user_id = $2 AND expires_at > $1 \
         ON CONFLICT DO NOTHING",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

async fn touch(tx: &mut PgConnection, user_id: i64, now: UnixTime) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET last_login = $1 WHERE id = $2")
        .bind(now)
        .bind(user_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Records `token`; a token already recorded (this very transaction
/// retried after its commit's answer was lost) is left as it is.
async fn insert_token(
    tx: &mut PgConnection,
    token: &NewToken<'_>,
    now: UnixTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outstanding_tokens (jti, user_id, token_type, family_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(token.jti)
    .bind(token.user_id)
    .bind(token.token_type.as_str())
    .bind(token.family_id)
    .bind(now)
    .bind(token.expires_at)
    .execute(tx)
    .await?;
    Ok(())
}
