//! Writing a whole deployment into an empty database, for `jwtd
//! copy-store`. Rows travel as JSON arrays read back with
//! `jsonb_to_recordset`: one statement per table and chunk, whatever the
//! number of rows.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;

use super::Db;
use crate::store::StoreError;
use crate::store::copy::Contents;

/// Rows per statement.
const CHUNK: usize = 5_000;

impl Db {
    /// Writes `contents` in one transaction. The tables a deployment
    /// lives in are locked first (a replica starting meanwhile waits, then
    /// finds the keys copied here), then checked empty.
    pub async fn load(&self, contents: &Contents) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "LOCK TABLE users, signing_keys, token_families, outstanding_tokens IN EXCLUSIVE MODE",
        )
        .execute(&mut *tx)
        .await?;
        let held: (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM signing_keys), \
             (SELECT count(*) FROM outstanding_tokens) + (SELECT count(*) FROM token_families)",
        )
        .fetch_one(&mut *tx)
        .await?;
        if held != (0, 0, 0) {
            return Err(StoreError::NotEmpty(format!(
                "{} user(s), {} signing key(s), {} token record(s)",
                held.0, held.1, held.2
            )));
        }
        insert(
            &mut tx,
            "INSERT INTO users (id, username, password_hash, is_active, date_joined, last_login) \
             SELECT id, username, password_hash, is_active, date_joined, last_login \
             FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, username text, \
             password_hash text, is_active boolean, date_joined bigint, last_login bigint)",
            &contents.users,
        )
        .await?;
        // New users get ids after the copied ones.
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), \
             GREATEST((SELECT max(id) FROM users), 1))",
        )
        .execute(&mut *tx)
        .await?;
        let keys: Vec<serde_json::Value> = contents
            .keys
            .iter()
            .map(|key| {
                json!({
                    "kid": key.kid,
                    "alg": key.alg,
                    "state": key.state,
                    "public_jwk": key.public_jwk,
                    "sealed_private": key.sealed_private.as_ref().map(|sealed| STANDARD.encode(sealed)),
                    "created_at": key.created_at,
                    "activated_at": key.activated_at,
                    "deactivated_at": key.deactivated_at,
                    "retired_at": key.retired_at,
                    "revoked_at": key.revoked_at,
                    "rotate_requested_at": key.rotate_requested_at,
                })
            })
            .collect();
        insert(
            &mut tx,
            "INSERT INTO signing_keys (kid, alg, state, public_jwk, sealed_private, created_at, \
             activated_at, deactivated_at, retired_at, revoked_at, rotate_requested_at) \
             SELECT kid, alg, state, public_jwk, decode(sealed_private, 'base64'), created_at, \
             activated_at, deactivated_at, retired_at, revoked_at, rotate_requested_at \
             FROM jsonb_to_recordset($1::jsonb) AS r(kid text, alg text, state text, \
             public_jwk text, sealed_private text, created_at bigint, activated_at bigint, \
             deactivated_at bigint, retired_at bigint, revoked_at bigint, \
             rotate_requested_at bigint)",
            &keys,
        )
        .await?;
        insert(
            &mut tx,
            "INSERT INTO token_families (id, user_id, created_at, revoked_at) \
             SELECT id, user_id, created_at, revoked_at FROM jsonb_to_recordset($1::jsonb) \
             AS r(id text, user_id bigint, created_at bigint, revoked_at bigint)",
            &contents.families,
        )
        .await?;
        insert(
            &mut tx,
            "INSERT INTO outstanding_tokens (jti, user_id, token_type, family_id, created_at, \
             expires_at, rotated_at, replaced_by) \
             SELECT jti, user_id, token_type, family_id, created_at, expires_at, rotated_at, \
             replaced_by FROM jsonb_to_recordset($1::jsonb) AS r(jti text, user_id bigint, \
             token_type text, family_id text, created_at bigint, expires_at bigint, \
             rotated_at bigint, replaced_by text)",
            &contents.tokens,
        )
        .await?;
        insert(
            &mut tx,
            "INSERT INTO blacklisted_tokens (jti, blacklisted_at) \
             SELECT jti, blacklisted_at FROM jsonb_to_recordset($1::jsonb) \
             AS r(jti text, blacklisted_at bigint)",
            &contents.blacklist,
        )
        .await?;
        insert(
            &mut tx,
            "INSERT INTO login_failures (counter, subject, window_start, failures) \
             SELECT counter, subject, window_start, failures FROM jsonb_to_recordset($1::jsonb) \
             AS r(counter text, subject text, window_start bigint, failures integer)",
            &contents.login_failures,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Runs `sql` (one `$1` JSON array of rows) over `rows`, a chunk at a time.
async fn insert<T: Serialize>(
    tx: &mut PgConnection,
    sql: &'static str,
    rows: &[T],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK) {
        let json = serde_json::to_string(chunk)
            .map_err(|err| StoreError::Corrupt(format!("encoding rows to copy: {err}")))?;
        sqlx::query(sql).bind(json).execute(&mut *tx).await?;
    }
    Ok(())
}
