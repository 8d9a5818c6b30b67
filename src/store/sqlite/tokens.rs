//! Queries on outstanding refresh and sliding tokens, their families and
//! the blacklist. Tokens are known by `jti`; the token text is never stored.

use std::sync::Arc;

use serde_json::{Value, json};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite, SqliteConnection};
use tokio::sync::OwnedMutexGuard;

use super::{Db, WriteTransaction};
use crate::clock::UnixTime;
use crate::store::{BatchRead, BatchWrites, NewToken, RecordedType, StoreError, TokenRecord};

/// What is recorded of the token `?1`: a read, no lock beyond the
/// snapshot of its statement.
const TOKEN_RECORD_SQL: &str = "\
    SELECT o.jti, o.user_id, o.family_id, o.rotated_at, o.replaced_by, \
           b.jti IS NOT NULL AS blacklisted, \
           f.revoked_at IS NOT NULL AS family_revoked, f.created_at AS family_created_at \
    FROM outstanding_tokens o \
    LEFT JOIN blacklisted_tokens b ON b.jti = o.jti \
    LEFT JOIN token_families f ON f.id = o.family_id \
    WHERE o.jti = ?1";

/// Begins a refresh batch and reads what is recorded of the tokens in the
/// JSON array `?1`, with whether their user exists and is active.
/// `BEGIN IMMEDIATE` takes SQLite's write lock first, so what this reads
/// stays true until the batch commits, whatever other processes do.
const BEGIN_BATCH_SQL: &str = "\
    BEGIN IMMEDIATE; \
    SELECT o.jti, o.user_id, o.family_id, o.rotated_at, o.replaced_by, \
           b.jti IS NOT NULL AS blacklisted, \
           f.revoked_at IS NOT NULL AS family_revoked, f.created_at AS family_created_at, \
           u.id AS active_user \
    FROM outstanding_tokens o \
    LEFT JOIN blacklisted_tokens b ON b.jti = o.jti \
    LEFT JOIN token_families f ON f.id = o.family_id \
    LEFT JOIN users u ON u.id = o.user_id AND u.is_active \
    WHERE o.jti IN (SELECT value FROM json_each(?1))";

/// Writes a refresh batch and commits, in the batch's transaction (its
/// write lock is already held). `?1` is the time; `?2` the batch as one
/// JSON document with the lists `new_tokens`, `replaced` (`[old, new]`
/// pairs), `blacklisted` and `revoked_families` (every statement uses both
/// parameters: sqlx binds numbered parameters only without gaps). A
/// revoked family's tokens are blacklisted last, so tokens this batch
/// added to it are too.
const COMMIT_BATCH_SQL: &str = "\
    INSERT INTO outstanding_tokens (jti, user_id, token_type, family_id, created_at, expires_at) \
        SELECT value->>'jti', value->>'user_id', value->>'token_type', value->>'family_id', ?1, \
               value->>'expires_at' \
        FROM json_each(?2, '$.new_tokens'); \
    UPDATE outstanding_tokens SET rotated_at = COALESCE(rotated_at, ?1), replaced_by = r.value->>1 \
        FROM json_each(?2, '$.replaced') AS r \
        WHERE outstanding_tokens.jti = r.value->>0; \
    INSERT OR IGNORE INTO blacklisted_tokens (jti, blacklisted_at) \
        SELECT value, ?1 FROM json_each(?2, '$.blacklisted'); \
    UPDATE token_families SET revoked_at = ?1 \
        WHERE revoked_at IS NULL \
          AND id IN (SELECT value FROM json_each(?2, '$.revoked_families')); \
    INSERT OR IGNORE INTO blacklisted_tokens (jti, blacklisted_at) \
        SELECT jti, ?1 FROM outstanding_tokens \
        WHERE family_id IN (SELECT value FROM json_each(?2, '$.revoked_families')); \
    COMMIT";

// A login's or a sliding token's record: one trip to SQLite, one
// transaction (`BEGIN IMMEDIATE` takes the write lock, `COMMIT` lets it
// go). Parameters, bound by [`bind_new_token`]: `?1` the time, `?2` the
// user, `?3` the family, `?4` the token's id, `?5` its type, `?6` its
// expiry. Each statement uses ?1 up to its highest number with no gap:
// sqlx binds a numbered parameter by its number only then.

/// A login: its family and its refresh token.
const RECORD_LOGIN_SQL: &str = "\
    BEGIN IMMEDIATE; \
    INSERT INTO token_families (id, user_id, created_at) VALUES (?3, ?2, ?1); \
    INSERT INTO outstanding_tokens (jti, user_id, token_type, family_id, created_at, expires_at) \
        VALUES (?4, ?2, ?5, ?3, ?1, ?6); \
    COMMIT";

/// A login, its family and refresh token, and the user's `last_login`.
const RECORD_LOGIN_WITH_LAST_LOGIN_SQL: &str = "\
    BEGIN IMMEDIATE; \
    UPDATE users SET last_login = ?1 WHERE id = ?2; \
    INSERT INTO token_families (id, user_id, created_at) VALUES (?3, ?2, ?1); \
    INSERT INTO outstanding_tokens (jti, user_id, token_type, family_id, created_at, expires_at) \
        VALUES (?4, ?2, ?5, ?3, ?1, ?6); \
    COMMIT";

/// A sliding token.
const RECORD_SLIDING_SQL: &str = "\
    BEGIN IMMEDIATE; \
    INSERT INTO outstanding_tokens (jti, user_id, token_type, family_id, created_at, expires_at) \
        VALUES (?4, ?2, ?5, ?3, ?1, ?6); \
    COMMIT";

/// A sliding token and the user's `last_login`.
const RECORD_SLIDING_WITH_LAST_LOGIN_SQL: &str = "\
    BEGIN IMMEDIATE; \
    UPDATE users SET last_login = ?1 WHERE id = ?2; \
    INSERT INTO outstanding_tokens (jti, user_id, token_type, family_id, created_at, expires_at) \
        VALUES (?4, ?2, ?5, ?3, ?1, ?6); \
    COMMIT";

impl Db {
    /// Records the refresh token of a new login in its new family
    /// (`token.family_id`), and the user's `last_login` when
    /// `touch_last_login`: one transaction, in one trip.
    pub async fn record_login(
        &self,
        token: &NewToken<'_>,
        now: UnixTime,
        touch_last_login: bool,
    ) -> Result<(), StoreError> {
        let sql = if touch_last_login {
            RECORD_LOGIN_WITH_LAST_LOGIN_SQL
        } else {
            RECORD_LOGIN_SQL
        };
        self.write_in_one_trip(bind_new_token(sql, token, now))
            .await
    }

    /// Records a sliding token, and the user's `last_login` when
    /// `touch_last_login`: one transaction, in one trip.
    pub async fn record_sliding(
        &self,
        token: &NewToken<'_>,
        now: UnixTime,
        touch_last_login: bool,
    ) -> Result<(), StoreError> {
        let sql = if touch_last_login {
            RECORD_SLIDING_WITH_LAST_LOGIN_SQL
        } else {
            RECORD_SLIDING_SQL
        };
        self.write_in_one_trip(bind_new_token(sql, token, now))
            .await
    }

    /// What is recorded of the token with this `jti`.
    pub async fn token_record(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(TOKEN_RECORD_SQL)
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
        let WriteTransaction { mut tx, _turn } = self.begin_write().await?;
        let count = blacklist_outstanding(&mut tx, user_id, now).await?;
        tx.commit().await?;
        Ok(count)
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

    /// The refresh writer's own connection, taken out of the pool (for
    /// good) at its first batch.
    pub fn refresh_connection(&self) -> RefreshConnection {
        RefreshConnection {
            db: self.clone(),
            connection: None,
        }
    }
}

/// A connection that only writes batches of refreshes. A batch costs two
/// trips to SQLite's thread whatever its size: begin and read, then write
/// and commit (statements of a trip run back to back; lists travel as
/// JSON arrays). Under load each trip waits ~0.1–0.5 ms for a core on
/// these 2-core machines, so trips, not statements, set a batch's time.
pub struct RefreshConnection {
    db: Db,
    /// Taken from the pool when first needed; dropped (closing it rolls
    /// back whatever it left open) after any failure.
    connection: Option<SqliteConnection>,
}

/// An open batch: SQLite's write lock and this process's writer turn are
/// held until [`commit`](Self::commit); dropped without it, it changes
/// nothing.
pub struct RefreshBatch<'c> {
    connection: &'c mut Option<SqliteConnection>,
    _turn: OwnedMutexGuard<()>,
    committed: bool,
}

impl RefreshConnection {
    /// Begins a batch (`BEGIN IMMEDIATE`: what it reads stays true until
    /// it commits, whatever other processes do) and reads what is known of
    /// the tokens with these ids.
    pub async fn begin(
        &mut self,
        jtis: &[&str],
    ) -> Result<(RefreshBatch<'_>, BatchRead), StoreError> {
        let turn = Arc::clone(&self.db.writer).lock_owned().await;
        if self.connection.is_none() {
            self.connection = Some(self.db.pool.acquire().await?.detach());
        }
        let mut batch = RefreshBatch {
            connection: &mut self.connection,
            _turn: turn,
            committed: false,
        };
        let rows = sqlx::query(BEGIN_BATCH_SQL)
            .bind(json!(jtis).to_string())
            .fetch_all(batch.connection())
            .await?;
        let mut read = BatchRead::default();
        for row in rows {
            if row.try_get::<Option<i64>, _>("active_user")?.is_some() {
                read.active_users.insert(row.try_get("user_id")?);
            }
            read.records
                .insert(row.try_get("jti")?, record_from_row(row)?);
        }
        Ok((batch, read))
    }
}

impl RefreshBatch<'_> {
    fn connection(&mut self) -> &mut SqliteConnection {
        self.connection
            .as_mut()
            .expect("a batch is only made with a connection")
    }

    /// Writes `writes`, dated `now`, and commits: every change of the
    /// batch is durable at once.
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
        });
        sqlx::query(COMMIT_BATCH_SQL)
            .bind(now)
            .bind(batch.to_string())
            .execute(self.connection())
            .await?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for RefreshBatch<'_> {
    /// A batch that did not commit closes its connection (SQLite rolls
    /// back what a closed connection left open); the next batch takes a
    /// fresh one from the pool.
    fn drop(&mut self) {
        if !self.committed {
            *self.connection = None;
        }
    }
}

/// Ends every session of `user_id`, inside the caller's write transaction:
/// blacklists each of its outstanding tokens that has not expired by `now`,
/// and revokes its refresh families, so that no retry within
/// `refresh_reuse_grace` can bring a session back. Returns how many tokens
/// were newly blacklisted.
pub(super) async fn blacklist_outstanding(
    tx: &mut SqliteConnection,
    user_id: i64,
    now: UnixTime,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO blacklisted_tokens (jti, blacklisted_at) \
         SELECT jti, ?1 FROM outstanding_tokens WHERE user_id = ?2 AND expires_at > ?1",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE token_families SET revoked_at = ?1 WHERE user_id = ?2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

/// `sql` with a new token's parameters bound: `?1` the time, `?2` the
/// user, `?3` its family, `?4` the token's id, `?5` its type, `?6` its
/// expiry.
fn bind_new_token<'q>(
    sql: &'static str,
    token: &NewToken<'q>,
    now: UnixTime,
) -> Query<'q, Sqlite, SqliteArguments> {
    sqlx::query(sql)
        .bind(now)
        .bind(token.user_id)
        .bind(token.family_id)
        .bind(token.jti)
        .bind(token.token_type.as_str())
        .bind(token.expires_at)
}

fn record_from_row(row: SqliteRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        user_id: row.try_get("user_id")?,
        family_id: row.try_get("family_id")?,
        blacklisted: row.try_get("blacklisted")?,
        family_revoked: row.try_get("family_revoked")?,
        family_created_at: row.try_get("family_created_at")?,
        rotated_at: row.try_get("rotated_at")?,
        replaced_by: row.try_get("replaced_by")?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn refresh_token(jti: &str) -> NewToken<'_> {
        NewToken {
            jti,
            user_id: 1,
            token_type: RecordedType::Refresh,
            family_id: None,
            expires_at: 2_000,
        }
    }

    async fn families(store: &Db) -> Vec<String> {
        sqlx::query_scalar("SELECT id FROM token_families ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_login_record_that_fails_part_way_leaves_nothing_and_blocks_no_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Db::open(&dir.path().join("jwtd.db")).await.unwrap();
        let with_family = |family, jti| NewToken {
            family_id: Some(family),
            ..refresh_token(jti)
        };
        store
            .record_login(&with_family("fa", "t1"), 100, true)
            .await
            .unwrap();
        // The family is written, then the token's id is taken.
        let again = store
            .record_login(&with_family("fb", "t1"), 100, true)
            .await;
        assert!(again.is_err(), "a second token with id t1 is refused");
        assert_eq!(families(&store).await, ["fa"], "nothing of it is kept");
        // The next writes neither wait for a lock it left nor fail on it.
        let next = tokio::time::timeout(Duration::from_secs(5), async {
            store
                .record_login(&with_family("fc", "t2"), 100, false)
                .await?;
            let sliding = NewToken {
                token_type: RecordedType::Sliding,
                ..refresh_token("t3")
            };
            store.record_sliding(&sliding, 100, false).await
        })
        .await
        .expect("later writes do not wait for the failed one");
        next.unwrap();
        assert_eq!(families(&store).await, ["fa", "fc"]);
    }

    #[tokio::test]
    async fn a_login_record_given_up_part_way_leaves_nothing_and_blocks_no_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwtd.db");
        let store = Db::open(&path).await.unwrap();
        // Another process holds the write lock, so the record's
        // `BEGIN IMMEDIATE` is still waiting when its caller gives up (a
        // client that hangs up); then the lock is let go.
        let other = Db::open(&path).await.unwrap();
        let lock = other.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let token = NewToken {
            family_id: Some("gone"),
            ..refresh_token("t-gone")
        };
        let wait = Duration::from_millis(100);
        let given_up = tokio::time::timeout(wait, store.record_login(&token, 100, true));
        assert!(given_up.await.is_err(), "the record waits for the lock");
        lock.rollback().await.unwrap();

        // SQLite's thread retries the lock in its own time (tens of ms):
        // the writes that follow, for a second, must neither fail nor wait.
        let mut written = Vec::new();
        for attempt in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (family, jti) = (format!("next-{attempt}"), format!("t-next-{attempt}"));
            let token = NewToken {
                family_id: Some(&family),
                ..refresh_token(&jti)
            };
            let next = store.record_login(&token, 100, true);
            tokio::time::timeout(Duration::from_secs(5), next)
                .await
                .expect("a later record does not wait for a lock the given-up one left")
                .expect("a later record is written");
            written.push(family);
        }
        assert_eq!(
            families(&store).await,
            written,
            "nothing of the given-up one"
        );
    }
}
