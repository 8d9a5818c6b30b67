//! Queries on outstanding refresh and sliding tokens, their families and
//! the blacklist. Tokens are known by `jti`; the token text is never stored.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::{Store, StoreError, WriteTransaction};
use crate::clock::UnixTime;
use crate::tokens::{TokenRecord, TokenType};

/// What is recorded of tokens: add a `WHERE` on `o.jti`.
macro_rules! record_sql {
    ($where:literal) => {
        concat!(
            "SELECT o.jti, o.user_id, o.family_id, o.rotated_at, o.replaced_by, \
             b.jti IS NOT NULL AS blacklisted, f.revoked_at IS NOT NULL AS family_revoked \
             FROM outstanding_tokens o \
             LEFT JOIN blacklisted_tokens b ON b.jti = o.jti \
             LEFT JOIN token_families f ON f.id = o.family_id ",
            $where
        )
    };
}

/// A token to record as outstanding.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// Its id.
    pub jti: &'a str,
    /// Its user.
    pub user_id: i64,
    /// `refresh` or `sliding`.
    pub token_type: TokenType,
    /// Its family (refresh tokens).
    pub family_id: Option<&'a str>,
    /// When it stops being usable: `exp`, or `refresh_exp` for sliding tokens.
    pub expires_at: UnixTime,
}

impl Store {
    /// Records the refresh token of a new login, in a new family, and the
    /// user's `last_login` when `touch_last_login`: one transaction.
    pub async fn record_login(
        &self,
        family_id: &str,
        token: &NewToken<'_>,
        now: UnixTime,
        touch_last_login: bool,
    ) -> Result<(), StoreError> {
        let WriteTransaction { mut tx, _turn } = self.begin_write().await?;
        if touch_last_login {
            set_last_login(&mut tx, token.user_id, now).await?;
        }
        sqlx::query("INSERT INTO token_families (id, user_id, created_at) VALUES (?, ?, ?)")
            .bind(family_id)
            .bind(token.user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_outstanding(&mut tx, token, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a sliding token, and the user's `last_login` when
    /// `touch_last_login`: one transaction.
    pub async fn record_sliding(
        &self,
        token: &NewToken<'_>,
        now: UnixTime,
        touch_last_login: bool,
    ) -> Result<(), StoreError> {
        let WriteTransaction { mut tx, _turn } = self.begin_write().await?;
        if touch_last_login {
            set_last_login(&mut tx, token.user_id, now).await?;
        }
        insert_outstanding(&mut tx, token, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// What is recorded of the token with this `jti`.
    pub async fn token_record(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(record_sql!("WHERE o.jti = ?"))
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        row.map(record_from_row).transpose()
    }

    /// Blacklists one token. Returns `false` if it was not recorded.
    pub async fn blacklist(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done = sqlx::query(
            "INSERT OR IGNORE INTO blacklisted_tokens (jti, blacklisted_at) \
             SELECT jti, ? FROM outstanding_tokens WHERE jti = ?",
        )
        .bind(now)
        .bind(jti)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Blacklists every unexpired outstanding token of a user; returns how
    /// many were newly blacklisted.
    pub async fn logout_all(&self, user_id: i64, now: UnixTime) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = sqlx::query(
            "INSERT OR IGNORE INTO blacklisted_tokens (jti, blacklisted_at) \
             SELECT jti, ? FROM outstanding_tokens WHERE user_id = ? AND expires_at > ?",
        )
        .bind(now)
        .bind(user_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes outstanding tokens past their expiry (their blacklist entries
    /// go with them) and families left empty; returns how many tokens.
    pub async fn flush_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let WriteTransaction { mut tx, _turn } = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM outstanding_tokens WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM token_families WHERE NOT EXISTS \
             (SELECT 1 FROM outstanding_tokens o WHERE o.family_id = token_families.id)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Starts a batch of refreshes: a write transaction that holds SQLite's
    /// write lock from the start, so what it reads stays true until it
    /// commits.
    pub async fn refresh_transaction(&self) -> Result<RefreshTransaction, StoreError> {
        Ok(RefreshTransaction {
            write: self.begin_write().await?,
        })
    }
}

/// The one transaction of a batch of refreshes; dropped without
/// [`commit`](Self::commit), it changes nothing. Each method is one
/// statement for the whole batch: lists travel as one JSON array.
pub struct RefreshTransaction {
    write: WriteTransaction,
}

impl RefreshTransaction {
    /// What is recorded of the tokens with these ids, by id.
    pub async fn records(
        &mut self,
        jtis: &[&str],
    ) -> Result<HashMap<String, TokenRecord>, StoreError> {
        let rows = sqlx::query(record_sql!(
            "WHERE o.jti IN (SELECT value FROM json_each(?))"
        ))
        .bind(json!(jtis).to_string())
        .fetch_all(&mut *self.write.tx)
        .await?;
        rows.into_iter()
            .map(|row| Ok((row.try_get("jti")?, record_from_row(row)?)))
            .collect()
    }

    /// Which of these users exist and are active.
    pub async fn active_users(&mut self, ids: &[i64]) -> Result<HashSet<i64>, StoreError> {
        let ids = sqlx::query_scalar(
            "SELECT id FROM users WHERE is_active AND id IN (SELECT value FROM json_each(?))",
        )
        .bind(json!(ids).to_string())
        .fetch_all(&mut *self.write.tx)
        .await?;
        Ok(ids.into_iter().collect())
    }

    /// Records new outstanding tokens.
    pub async fn insert(
        &mut self,
        tokens: &[NewToken<'_>],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let rows: Vec<Value> = tokens
            .iter()
            .map(|token| {
                json!({
                    "jti": token.jti,
                    "user_id": token.user_id,
                    "token_type": token.token_type.as_str(),
                    "family_id": token.family_id,
                    "expires_at": token.expires_at,
                })
            })
            .collect();
        sqlx::query(
            "INSERT INTO outstanding_tokens (jti, user_id, token_type, family_id, created_at, expires_at) \
             SELECT value->>'jti', value->>'user_id', value->>'token_type', value->>'family_id', ?, \
             value->>'expires_at' FROM json_each(?)",
        )
        .bind(now)
        .bind(Value::Array(rows).to_string())
        .execute(&mut *self.write.tx)
        .await?;
        Ok(())
    }

    /// Records which token replaced which: `(old, new)` pairs, one per old
    /// token. The grace runs from the first rotation: a later one keeps
    /// `rotated_at`.
    pub async fn mark_rotated(
        &mut self,
        replaced: &[(&str, &str)],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        if replaced.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE outstanding_tokens SET rotated_at = COALESCE(rotated_at, ?), \
             replaced_by = r.value->>1 FROM json_each(?) AS r \
             WHERE outstanding_tokens.jti = r.value->>0",
        )
        .bind(now)
        .bind(json!(replaced).to_string())
        .execute(&mut *self.write.tx)
        .await?;
        Ok(())
    }

    /// Blacklists these tokens.
    pub async fn blacklist(&mut self, jtis: &[&str], now: UnixTime) -> Result<(), StoreError> {
        if jtis.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT OR IGNORE INTO blacklisted_tokens (jti, blacklisted_at) \
             SELECT value, ? FROM json_each(?)",
        )
        .bind(now)
        .bind(json!(jtis).to_string())
        .execute(&mut *self.write.tx)
        .await?;
        Ok(())
    }

    /// Revokes families: every token of each is blacklisted, including
    /// tokens inserted earlier in this transaction.
    pub async fn revoke_families(
        &mut self,
        family_ids: &[&str],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        if family_ids.is_empty() {
            return Ok(());
        }
        let families = json!(family_ids).to_string();
        sqlx::query(
            "UPDATE token_families SET revoked_at = ? \
             WHERE revoked_at IS NULL AND id IN (SELECT value FROM json_each(?))",
        )
        .bind(now)
        .bind(&families)
        .execute(&mut *self.write.tx)
        .await?;
        sqlx::query(
            "INSERT OR IGNORE INTO blacklisted_tokens (jti, blacklisted_at) \
             SELECT jti, ? FROM outstanding_tokens \
             WHERE family_id IN (SELECT value FROM json_each(?))",
        )
        .bind(now)
        .bind(&families)
        .execute(&mut *self.write.tx)
        .await?;
        Ok(())
    }

    /// Makes every change durable at once.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.write.tx.commit().await?;
        Ok(())
    }
}

async fn set_last_login(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: i64,
    now: UnixTime,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET last_login = ? WHERE id = ?")
        .bind(now)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_outstanding(
    tx: &mut Transaction<'static, Sqlite>,
    token: &NewToken<'_>,
    now: UnixTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outstanding_tokens (jti, user_id, token_type, family_id, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(token.jti)
    .bind(token.user_id)
    .bind(token.token_type.as_str())
    .bind(token.family_id)
    .bind(now)
    .bind(token.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn record_from_row(row: SqliteRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        user_id: row.try_get("user_id")?,
        family_id: row.try_get("family_id")?,
        blacklisted: row.try_get("blacklisted")?,
        family_revoked: row.try_get("family_revoked")?,
        rotated_at: row.try_get("rotated_at")?,
        replaced_by: row.try_get("replaced_by")?,
    })
}
