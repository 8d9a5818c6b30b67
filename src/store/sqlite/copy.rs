//! Reading a whole deployment, for `jwtd copy-store`.

use super::Db;
use crate::store::StoreError;
use crate::store::copy::Contents;
use crate::store::keys::KEYS_SQL;

impl Db {
    /// Every row, read in one transaction (one snapshot, even while
    /// servers write).
    pub async fn contents(&self) -> Result<Contents, StoreError> {
        let mut tx = self.pool.begin().await?;
        let contents = Contents {
            users: sqlx::query_as(
                "SELECT id, username, password_hash, is_active, date_joined, last_login \
                 FROM users ORDER BY id",
            )
            .fetch_all(&mut *tx)
            .await?,
            keys: sqlx::query_as(KEYS_SQL).fetch_all(&mut *tx).await?,
            families: sqlx::query_as(
                "SELECT id, user_id, created_at, revoked_at FROM token_families ORDER BY id",
            )
            .fetch_all(&mut *tx)
            .await?,
            tokens: sqlx::query_as(
                "SELECT jti, user_id, token_type, family_id, created_at, expires_at, rotated_at, \
                 replaced_by FROM outstanding_tokens ORDER BY jti",
            )
            .fetch_all(&mut *tx)
            .await?,
            blacklist: sqlx::query_as(
                "SELECT jti, blacklisted_at FROM blacklisted_tokens ORDER BY jti",
            )
            .fetch_all(&mut *tx)
            .await?,
            login_failures: sqlx::query_as(
                "SELECT counter, subject, window_start, failures FROM login_failures",
            )
            .fetch_all(&mut *tx)
            .await?,
        };
        tx.rollback().await?;
        Ok(contents)
    }
}
