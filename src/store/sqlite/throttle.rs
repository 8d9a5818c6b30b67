//! Queries on `login_failures`: the login throttle's counters.

use sqlx::Row;

use super::Db;
use crate::clock::UnixTime;
use crate::store::{FailureCounter, FailureWindow, StoreError};

/// The windows of up to three counters, in one read. Unused pairs of
/// parameters are bound to empty strings, which name no counter.
const FAILURES_SQL: &str = "SELECT counter, subject, window_start, failures FROM login_failures \
     WHERE (counter = ?1 AND subject = ?2) OR (counter = ?3 AND subject = ?4) \
     OR (counter = ?5 AND subject = ?6)";

/// Counts one failure on counter (?1, ?2) at time ?3: a window that began
/// ?4 seconds or more before ?3 starts again from one. A single statement,
/// so concurrent failures from several processes each count.
const COUNT_FAILURE_SQL: &str = "INSERT INTO login_failures (counter, subject, window_start, failures) VALUES (?1, ?2, ?3, 1) \
     ON CONFLICT (counter, subject) DO UPDATE SET \
     failures = CASE WHEN excluded.window_start >= login_failures.window_start + ?4 \
         THEN 1 ELSE login_failures.failures + 1 END, \
     window_start = CASE WHEN excluded.window_start >= login_failures.window_start + ?4 \
         THEN excluded.window_start ELSE login_failures.window_start END";

/// Deletes the windows that ended before ?1.
const FORGET_FINISHED_SQL: &str = "DELETE FROM login_failures WHERE window_start < ?1";

impl Db {
    /// The current windows of `counters` (at most three), where they have
    /// one.
    pub async fn login_failures(
        &self,
        counters: &[FailureCounter],
    ) -> Result<Vec<(FailureCounter, FailureWindow)>, StoreError> {
        let mut query = sqlx::query(FAILURES_SQL);
        for index in 0..3 {
            let (counter, subject) = counters
                .get(index)
                .map_or(("", ""), |c| (c.counter, c.subject.as_str()));
            query = query.bind(counter).bind(subject);
        }
        let rows = query.fetch_all(&self.pool).await?;
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
            let failures: i64 = row.try_get("failures")?;
            windows.push((
                known.clone(),
                FailureWindow {
                    start: row.try_get("window_start")?,
                    failures: u32::try_from(failures).unwrap_or(u32::MAX),
                },
            ));
        }
        Ok(windows)
    }

    /// Counts a failed login on each of `counters` at `now`, in windows of
    /// `window` seconds, and deletes the windows that have ended; one
    /// transaction.
    pub async fn count_login_failure(
        &self,
        counters: &[FailureCounter],
        now: UnixTime,
        window: i64,
    ) -> Result<(), StoreError> {
        let mut write = self.begin_write().await?;
        for counter in counters {
            sqlx::query(COUNT_FAILURE_SQL)
                .bind(counter.counter)
                .bind(&counter.subject)
                .bind(now)
                .bind(window)
                .execute(&mut *write.tx)
                .await?;
        }
        sqlx::query(FORGET_FINISHED_SQL)
            .bind(now - window)
            .execute(&mut *write.tx)
            .await?;
        write.tx.commit().await?;
        Ok(())
    }

    /// Forgets one counter's failures.
    pub async fn forget_login_failures(&self, counter: &FailureCounter) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM login_failures WHERE counter = ?1 AND subject = ?2")
            .bind(counter.counter)
            .bind(&counter.subject)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
