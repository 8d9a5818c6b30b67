//! Queries on `login_failures`: the login throttle's counters.

use sqlx::Row;

use super::Db;
use crate::clock::UnixTime;
use crate::store::{FailureCounter, FailureWindow, StoreError};

impl Db {
    pub async fn login_failures(
        &self,
        counters: &[FailureCounter],
    ) -> Result<Vec<(FailureCounter, FailureWindow)>, StoreError> {
        let kinds: Vec<&str> = counters.iter().map(|c| c.counter).collect();
        let subjects: Vec<&str> = counters.iter().map(|c| c.subject.as_str()).collect();
        let rows = sqlx::query(
            "SELECT counter, subject, window_start, failures FROM login_failures \
             WHERE (counter, subject) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
        )
        .bind(&kinds)
        .bind(&subjects)
        .fetch_all(&self.pool)
        .await?;
        let mut windows = Vec::with_capacity(rows.len());
        for row in rows {
            let (counter, subject): (String, String) =
                (row.try_get("counter")?, row.try_get("subject")?);
            let Some(known) = counters
                .iter()
                .find(|c| c.counter == counter && c.subject == subject)
            else {
                continue;
            };
            let failures: i32 = row.try_get("failures")?;
            windows.push((
                known.clone(),
                FailureWindow {
                    start: row.try_get("window_start")?,
                    failures: u32::try_from(failures).unwrap_or(0),
                },
            ));
        }
        Ok(windows)
    }

    /// One statement per counter: an upsert is atomic on its row, so
    /// failures counted at once on several replicas each count.
    pub async fn count_login_failure(
        &self,
        counters: &[FailureCounter],
        now: UnixTime,
        window: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for counter in counters {
            sqlx::query(
                "INSERT INTO login_failures (counter, subject, window_start, failures) \
                 VALUES ($1, $2, $3, 1) \
                 ON CONFLICT (counter, subject) DO UPDATE SET \
                 failures = CASE WHEN excluded.window_start >= login_failures.window_start + $4 \
                     THEN 1 ELSE login_failures.failures + 1 END, \
                 window_start = CASE WHEN excluded.window_start >= login_failures.window_start + $4 \
                     THEN excluded.window_start ELSE login_failures.window_start END",
            )
            .bind(counter.counter)
            .bind(&counter.subject)
            .bind(now)
            .bind(window)
            .execute(&mut *tx)
            .await?;
        }
        // Rows another replica is counting on are skipped, never waited
        // for: two such deletes could otherwise deadlock.
        sqlx::query(
            "DELETE FROM login_failures WHERE (counter, subject) IN \
             (SELECT counter, subject FROM login_failures WHERE window_start < $1 \
              FOR UPDATE SKIP LOCKED)",
        )
        .bind(now - window)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn forget_login_failures(&self, counter: &FailureCounter) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE counter = $1 AND subject = $2")
            .bind(counter.counter)
            .bind(&counter.subject)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
