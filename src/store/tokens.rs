//! Queries on outstanding refresh and sliding tokens, their families and
//! the blacklist. Tokens are known by `jti`; the token text is never stored.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::{Store, StoreError, WriteTransaction};
use crate::clock::UnixTime;
use crate::tokens::{TokenRecord, TokenType};

const RECORD_SQL: &str = "SELECT o.user_id, o.family_id, o.rotated_at, o.replaced_by, \
     b.jti IS NOT NULL AS blacklisted, f.revoked_at IS NOT NULL AS family_revoked \
     FROM outstanding_tokens o \
     LEFT JOIN blacklisted_tokens b ON b.jti = o.jti \
     LEFT JOIN token_families f ON f.id = o.family_id \
     WHERE o.jti = ?";

/// [`RECORD_SQL`] and the user's `is_active`, as one row even when the
/// token is unknown (`found` false).
const RECORD_AND_USER_SQL: &str = "SELECT \
     COALESCE((SELECT is_active FROM users WHERE id = ?), 0) AS user_active, \
     o.jti IS NOT NULL AS found, o.user_id, o.family_id, o.rotated_at, o.replaced_by, \
     b.jti IS NOT NULL AS blacklisted, f.revoked_at IS NOT NULL AS family_revoked \
     FROM (SELECT 1) AS one \
     LEFT JOIN outstanding_tokens o ON o.jti = ? \
     LEFT JOIN blacklisted_tokens b ON b.jti = o.jti \
     LEFT JOIN token_families f ON f.id = o.family_id";

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
    /// Records the refresh token of a new login, in a new family.
    pub async fn record_login(
        &self,
        family_id: &str,
        token: &NewToken<'_>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let WriteTransaction { mut tx, _turn } = self.begin_write().await?;
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

    /// Records a sliding token.
    pub async fn record_sliding(
        &self,
        token: &NewToken<'_>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let WriteTransaction { mut tx, _turn } = self.begin_write().await?;
        insert_outstanding(&mut tx, token, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// What is recorded of the token with this `jti`.
    pub async fn token_record(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(RECORD_SQL)
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

    /// Starts a refresh: a write transaction that holds SQLite's write lock
    /// from the start, so concurrent refreshes of one token are decided one
    /// after the other.
    pub async fn refresh_transaction(&self) -> Result<RefreshTransaction, StoreError> {
        Ok(RefreshTransaction {
            write: self.begin_write().await?,
        })
    }
}

/// The one transaction of a refresh; dropped without
/// [`commit`](Self::commit), it changes nothing.
pub struct RefreshTransaction {
    write: WriteTransaction,
}

impl RefreshTransaction {
    /// What is recorded of the presented token, and whether `user_id`
    /// names an active user, in one query.
    pub async fn record_and_user(
        &mut self,
        jti: &str,
        user_id: i64,
    ) -> Result<(Option<TokenRecord>, bool), StoreError> {
        let row = sqlx::query(RECORD_AND_USER_SQL)
            .bind(user_id)
            .bind(jti)
            .fetch_one(&mut *self.write.tx)
            .await?;
        let active = row.try_get::<bool, _>("user_active")?;
        let record = match row.try_get::<bool, _>("found")? {
            true => Some(record_from_row(row)?),
            false => None,
        };
        Ok((record, active))
    }

    /// Records `new` as the token that replaced `old`, blacklisting `old`
    /// when asked.
    pub async fn rotate(
        &mut self,
        old: &str,
        new: &NewToken<'_>,
        blacklist_old: bool,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        insert_outstanding(&mut self.write.tx, new, now).await?;
        // The grace runs from the first rotation: retries don't extend it.
        sqlx::query(
            "UPDATE outstanding_tokens SET rotated_at = COALESCE(rotated_at, ?), replaced_by = ? WHERE jti = ?",
        )
            .bind(now)
            .bind(new.jti)
            .bind(old)
            .execute(&mut *self.write.tx)
            .await?;
        if blacklist_old {
            self.blacklist(old, now).await?;
        }
        Ok(())
    }

    /// Blacklists one token.
    pub async fn blacklist(&mut self, jti: &str, now: UnixTime) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO blacklisted_tokens (jti, blacklisted_at) VALUES (?, ?)")
            .bind(jti)
            .bind(now)
            .execute(&mut *self.write.tx)
            .await?;
        Ok(())
    }

    /// Revokes a family: every token of it is blacklisted.
    pub async fn revoke_family(
        &mut self,
        family_id: &str,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE token_families SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(family_id)
            .execute(&mut *self.write.tx)
            .await?;
        sqlx::query(
            "INSERT OR IGNORE INTO blacklisted_tokens (jti, blacklisted_at) \
             SELECT jti, ? FROM outstanding_tokens WHERE family_id = ?",
        )
        .bind(now)
        .bind(family_id)
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
