//! Refreshing a refresh token, from the request to the commit.
//!
//! Refresh tokens of one login form a family. A token that was rotated away
//! and comes back is a sign of theft: the whole family is revoked, so the
//! thief and the victim both log in again. Within `refresh_reuse_grace`, the
//! same token is instead taken as a client retrying a refresh whose answer
//! it never got. A family older than `refresh_family_lifetime` refreshes no
//! more.
//!
//! The path, top to bottom in this file:
//! 1. [`Sessions::refresh`] signs the new tokens on the request's task and
//!    hands a [`RefreshJob`] to this process's [`RefreshWriter`];
//! 2. the writer's task groups the jobs that arrive while a batch is being
//!    written: one transaction and one fsync for all of them, no reply
//!    before the commit that made a refresh durable. A batch costs two
//!    trips to SQLite on the writer's own connection, whatever its size
//!    ([`RefreshConnection`]): read what the store knows of every presented
//!    token, then write all changes and commit;
//! 3. between the two, [`plan`] decides each job in arrival order with
//!    [`decide`] (pure: every branch is tested without a database), against
//!    the store's knowledge as the jobs before it changed it. So two
//!    refreshes of one token in a batch still give one success, and a reuse
//!    revokes a family even if another refresh of that family came first.
//!    If a batch fails, each of its jobs is tried again alone, so one bad
//!    refresh cannot fail the others.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::sessions::{Refreshed, SessionError, Sessions};
use super::{Claims, Invalid, TokenError, TokenType};
use crate::clock::{UnixTime, seconds};
use crate::config::Config;
use crate::metrics::{self, METRICS};
use crate::store::{
    BatchWrites, RefreshConnection, RotatedToken, Store, StoreError, TokenRecord,
    pause_before_retry,
};

/// The settings that shape a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Refresh returns a new refresh token.
    pub rotate: bool,
    /// The rotated-away token is blacklisted (and reuse detection is on).
    pub blacklist_after_rotation: bool,
    /// Seconds during which a rotated-away token counts as a retry.
    pub reuse_grace: i64,
    /// Seconds after its login at which a family stops refreshing; 0: never.
    pub family_lifetime: i64,
}

impl RefreshPolicy {
    /// The policy `config` sets.
    pub fn new(config: &Config) -> Self {
        Self {
            rotate: config.rotate_refresh_tokens,
            blacklist_after_rotation: config.blacklist_after_rotation,
            reuse_grace: seconds(config.refresh_reuse_grace),
            family_lifetime: seconds(config.refresh_family_lifetime),
        }
    }
}

/// The outcome of a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Issue an access token; the refresh token stays as it is.
    AccessOnly,
    /// Issue an access token and a new refresh token in the same family;
    /// the presented one is marked rotated (and blacklisted, if configured).
    Rotate,
    /// A client's retry within the grace: a fresh pair in the same family;
    /// the token issued by the first attempt (`superseded`) is blacklisted.
    Retry {
        /// The jti that replaced the presented token the first time.
        superseded: Option<String>,
    },
    /// Reuse of a rotated-away token: revoke the whole family and refuse.
    RevokeFamily(String),
    /// Refuse without changing anything.
    Refuse(TokenError),
    /// The token's user is disabled or gone: refuse without changing anything.
    InactiveUser,
}

/// Decides a refresh of a token whose signature and claims are valid, by
/// a user who is active or not.
pub fn decide(
    record: Option<&TokenRecord>,
    user_active: bool,
    now: UnixTime,
    policy: &RefreshPolicy,
) -> Decision {
    let Some(record) = record else {
        // Signed by us but never recorded (or flushed after expiry).
        return Decision::Refuse(TokenError::Invalid(Invalid::NotRecorded));
    };
    if record.family_revoked {
        return Decision::Refuse(TokenError::Blacklisted);
    }
    let family_ended = record
        .family_created_at
        .is_some_and(|began| policy.family_lifetime > 0 && now >= began + policy.family_lifetime);
    if let (Some(rotated_at), true) = (record.rotated_at, policy.blacklist_after_rotation) {
        if policy.reuse_grace > 0 && now - rotated_at <= policy.reuse_grace {
            if family_ended {
                return Decision::Refuse(TokenError::Expired);
            }
            if !user_active {
                return Decision::InactiveUser;
            }
            return Decision::Retry {
                superseded: record.replaced_by.clone(),
            };
        }
        return match &record.family_id {
            Some(family) => Decision::RevokeFamily(family.clone()),
            None => Decision::Refuse(TokenError::Blacklisted),
        };
    }
    // A reuse is detected (above) even in an ended family.
    if family_ended {
        return Decision::Refuse(TokenError::Expired);
    }
    if record.blacklisted {
        return Decision::Refuse(TokenError::Blacklisted);
    }
    if !user_active {
        return Decision::InactiveUser;
    }
    if policy.rotate {
        Decision::Rotate
    } else {
        Decision::AccessOnly
    }
}

impl Sessions<'_> {
    /// Refreshes with a verified refresh token, in one transaction (shared
    /// with the refreshes that arrive meanwhile: see [`RefreshWriter`]).
    pub async fn refresh(&self, claims: &Claims, now: UnixTime) -> Result<Refreshed, SessionError> {
        let user_id = claims
            .user_id
            .parse::<i64>()
            .map_err(|_| SessionError::NoActiveAccount)?;
        // Sign here, on the request's task: the writer does SQL only.
        let (access, _) = self
            .tokens
            .issue(self.keys, TokenType::Access, &claims.user_id, now)?;
        let rotated = match self.policy.rotate {
            true => Some(
                self.tokens
                    .issue(self.keys, TokenType::Refresh, &claims.user_id, now)?,
            ),
            false => None,
        };
        let job = RefreshJob {
            jti: claims.jti.clone(),
            user_id,
            rotated: rotated.as_ref().map(|(_, new)| (new.jti.clone(), new.exp)),
            policy: self.policy,
            now,
        };
        self.writer.apply(job).await?;
        let handed_out: &[TokenType] = match rotated {
            Some(_) => &[TokenType::Access, TokenType::Refresh],
            None => &[TokenType::Access],
        };
        super::count_issued(self.keys, now, handed_out);
        Ok(Refreshed {
            access,
            refresh: rotated.map(|(token, _)| token),
        })
    }
}

/// Most refreshes written in one transaction (which holds SQLite's write
/// lock: other processes' writers wait for it).
const MAX_BATCH: usize = 256;

/// Refreshes waiting for the writer before new ones wait to be queued.
const QUEUE: usize = 4 * MAX_BATCH;

/// What a refresh changes in the store, decided inside the transaction.
#[derive(Debug, Clone)]
pub struct RefreshJob {
    /// The presented refresh token's id.
    pub jti: String,
    /// The user the token names, whose account must still be active.
    pub user_id: i64,
    /// The rotated refresh token's id and expiry, when rotating.
    pub rotated: Option<(String, UnixTime)>,
    /// Rotation and reuse settings.
    pub policy: RefreshPolicy,
    /// The time of the request.
    pub now: UnixTime,
}

/// The writer of this process's refreshes; cheap to clone.
#[derive(Debug, Clone)]
pub struct RefreshWriter {
    jobs: mpsc::Sender<(RefreshJob, Reply)>,
    /// Set by [`RefreshWriter::finish`]: take no more jobs.
    closing: Arc<watch::Sender<bool>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

type Reply = oneshot::Sender<Result<(), SessionError>>;

impl RefreshWriter {
    /// Starts the writer task on the current Tokio runtime. It stops when
    /// the last clone of the writer is dropped, or at [`finish`](Self::finish).
    pub fn start(store: Store) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let (closing, closed) = watch::channel(false);
        let task = tokio::spawn(write_batches(store.refresh_connection(), queue, closed));
        Self {
            jobs,
            closing: Arc::new(closing),
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Refuses new jobs, commits every queued one and waits for the writer
    /// task to end.
    pub async fn finish(&self) {
        let _ = self.closing.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Applies `job` and waits until it is durable (or refused).
    pub async fn apply(&self, job: RefreshJob) -> Result<(), SessionError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || SessionError::Store(StoreError::Closed);
        self.jobs.send((job, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_batches(
    mut connection: RefreshConnection,
    mut queue: mpsc::Receiver<(RefreshJob, Reply)>,
    mut closing: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = tokio::select! {
            received = queue.recv_many(&mut batch, MAX_BATCH) => Some(received),
            // Queued jobs are still received after `close`, until none is left.
            _ = closing.wait_for(|closing| *closing) => None,
        };
        let received = match received {
            Some(received) => received,
            None => {
                queue.close();
                queue.recv_many(&mut batch, MAX_BATCH).await
            }
        };
        if received == 0 {
            return;
        }
        let jobs: Vec<&RefreshJob> = batch.iter().map(|(job, _)| job).collect();
        let started = std::time::Instant::now();
        let committed = commit_retrying(&mut connection, &jobs).await;
        tracing::debug!(
            refreshes = jobs.len(),
            micros = started.elapsed().as_micros(),
            ok = committed.is_ok(),
            "refresh batch"
        );
        let outcomes = match committed {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(err) if jobs.len() == 1 => vec![Err(err)],
            // Every job would wait out the same lock or closed store alone.
            Err(StoreError::Busy(reason)) => jobs
                .iter()
                .map(|_| Err(StoreError::Busy(reason.clone())))
                .collect(),
            Err(StoreError::Closed) => jobs.iter().map(|_| Err(StoreError::Closed)).collect(),
            Err(err) => {
                tracing::warn!(error = %err, refreshes = jobs.len(), "refresh batch failed; committing each alone");
                let mut alone = Vec::with_capacity(jobs.len());
                for job in &jobs {
                    alone.push(
                        commit_retrying(&mut connection, &[job])
                            .await
                            .map(|mut one| one.remove(0)),
                    );
                }
                alone
            }
        };
        for ((job, reply), outcome) in batch.drain(..).zip(outcomes) {
            let _ = reply.send(answer(&job, outcome));
        }
    }
}

/// [`commit`], run again when the database interrupted it (a deadlock, a
/// serialization failure, a lost connection).
async fn commit_retrying(
    connection: &mut RefreshConnection,
    jobs: &[&RefreshJob],
) -> Result<Vec<Decision>, StoreError> {
    let mut attempts = 0;
    loop {
        let result = commit(connection, jobs).await;
        match pause_before_retry(&result, attempts) {
            Some(pause) => {
                attempts += 1;
                tokio::time::sleep(pause).await;
            }
            None => return result.map_err(StoreError::interrupted_is_busy),
        }
    }
}

/// Decides and writes `jobs` in one transaction.
async fn commit(
    connection: &mut RefreshConnection,
    jobs: &[&RefreshJob],
) -> Result<Vec<Decision>, StoreError> {
    let jtis: Vec<&str> = jobs.iter().map(|job| job.jti.as_str()).collect();
    let (batch, read) = connection.begin(&jtis).await?;
    let (decisions, writes) = plan(jobs, read.records, &read.active_users);
    let now = jobs.iter().map(|job| job.now).max().unwrap_or_default();
    batch.commit(&writes, now).await?;
    Ok(decisions)
}

/// Decides `jobs` in order against `records` (what the store knows of the
/// presented tokens), updating them as each refresh would the store, and
/// collects the writes.
fn plan(
    jobs: &[&RefreshJob],
    mut records: HashMap<String, TokenRecord>,
    active_users: &HashSet<i64>,
) -> (Vec<Decision>, BatchWrites) {
    let mut writes = BatchWrites::default();
    let mut revoked: HashSet<String> = HashSet::new();
    let mut decisions = Vec::with_capacity(jobs.len());
    for job in jobs {
        let record = records.get(&job.jti).cloned().map(|mut record| {
            record.family_revoked |= record
                .family_id
                .as_ref()
                .is_some_and(|family| revoked.contains(family));
            record
        });
        if already_applied(job, record.as_ref()) {
            decisions.push(Decision::Rotate);
            continue;
        }
        let user_active = active_users.contains(&job.user_id);
        let decision = decide(record.as_ref(), user_active, job.now, &job.policy);
        match &decision {
            Decision::RevokeFamily(family) => {
                if revoked.insert(family.clone()) {
                    writes.revoked_families.push(family.clone());
                }
            }
            Decision::AccessOnly | Decision::Rotate | Decision::Retry { .. } => {
                if let Some(rotated) = &job.rotated {
                    if let Decision::Retry {
                        superseded: Some(superseded),
                    } = &decision
                    {
                        if let Some(record) = records.get_mut(superseded) {
                            record.blacklisted = true;
                        }
                        writes.blacklisted.push(superseded.clone());
                    }
                    rotate(job, rotated, &mut records, &mut writes);
                }
            }
            Decision::Refuse(_) | Decision::InactiveUser => {}
        }
        decisions.push(decision);
    }
    (decisions, writes)
}

/// Whether `record` shows `job`'s own rotation: an earlier attempt of this
/// batch committed, and the answer to its COMMIT was lost with the
/// connection. The job is done; deciding it again would take its own
/// rotation for a reuse.
fn already_applied(job: &RefreshJob, record: Option<&TokenRecord>) -> bool {
    match (&job.rotated, record) {
        (Some((new_jti, _)), Some(record)) => record.replaced_by.as_ref() == Some(new_jti),
        _ => false,
    }
}

/// `job`'s token replaced by `rotated`, in `records` and `writes`.
fn rotate(
    job: &RefreshJob,
    (new_jti, expires_at): &(String, UnixTime),
    records: &mut HashMap<String, TokenRecord>,
    writes: &mut BatchWrites,
) {
    let presented = records.get_mut(&job.jti);
    let family_id = presented.as_ref().and_then(|r| r.family_id.clone());
    if let Some(record) = presented {
        record.rotated_at = record.rotated_at.or(Some(job.now));
        record.replaced_by = Some(new_jti.clone());
        record.blacklisted |= job.policy.blacklist_after_rotation;
    }
    if job.policy.blacklist_after_rotation {
        writes.blacklisted.push(job.jti.clone());
    }
    writes.replaced.retain(|(old, _)| old != &job.jti);
    writes.replaced.push((job.jti.clone(), new_jti.clone()));
    writes.new_tokens.push(RotatedToken {
        jti: new_jti.clone(),
        user_id: job.user_id,
        family_id,
        expires_at: *expires_at,
    });
}

/// The requester's answer once the batch committed, with the audit events
/// of a reuse.
fn answer(job: &RefreshJob, committed: Result<Decision, StoreError>) -> Result<(), SessionError> {
    let decision = committed?;
    METRICS.refresh(match &decision {
        Decision::AccessOnly => metrics::Refresh::AccessOnly,
        Decision::Rotate => metrics::Refresh::Rotated,
        Decision::Retry { .. } => metrics::Refresh::Grace,
        Decision::RevokeFamily(_) => metrics::Refresh::ReuseDetected,
        Decision::Refuse(TokenError::Blacklisted) => metrics::Refresh::Blacklisted,
        Decision::Refuse(_) | Decision::InactiveUser => metrics::Refresh::Invalid,
    });
    match decision {
        Decision::AccessOnly | Decision::Rotate | Decision::Retry { .. } => Ok(()),
        Decision::Refuse(err) => Err(err.into()),
        Decision::InactiveUser => Err(SessionError::NoActiveAccount),
        Decision::RevokeFamily(family) => {
            let user_id = job.user_id;
            tracing::warn!(event = "refresh_reuse_detected", user_id, family = %family);
            tracing::warn!(event = "family_revoked", user_id, family = %family);
            Err(TokenError::Blacklisted.into())
        }
    }
}

#[cfg(test)]
mod decide_tests {
    use super::*;

    const STRICT: RefreshPolicy = RefreshPolicy {
        rotate: true,
        blacklist_after_rotation: true,
        reuse_grace: 0,
        family_lifetime: 0,
    };

    /// A recorded, unused token of user 1 in `family`.
    pub(super) fn fresh_in(family: &str) -> TokenRecord {
        TokenRecord {
            user_id: 1,
            family_id: Some(family.into()),
            blacklisted: false,
            family_revoked: false,
            family_created_at: Some(50),
            rotated_at: None,
            replaced_by: None,
        }
    }

    fn fresh() -> TokenRecord {
        fresh_in("f")
    }

    fn rotated_at(at: UnixTime) -> TokenRecord {
        TokenRecord {
            blacklisted: true,
            rotated_at: Some(at),
            replaced_by: Some("next".into()),
            ..fresh()
        }
    }

    #[test]
    fn a_fresh_token_rotates() {
        assert_eq!(decide(Some(&fresh()), true, 100, &STRICT), Decision::Rotate);
        let no_rotation = RefreshPolicy {
            rotate: false,
            ..STRICT
        };
        assert_eq!(
            decide(Some(&fresh()), true, 100, &no_rotation),
            Decision::AccessOnly
        );
    }

    #[test]
    fn reuse_without_grace_revokes_the_family() {
        assert_eq!(
            decide(Some(&rotated_at(100)), true, 100, &STRICT),
            Decision::RevokeFamily("f".into())
        );
    }

    #[test]
    fn reuse_within_the_grace_is_a_retry() {
        let graceful = RefreshPolicy {
            reuse_grace: 10,
            ..STRICT
        };
        assert_eq!(
            decide(Some(&rotated_at(100)), true, 110, &graceful),
            Decision::Retry {
                superseded: Some("next".into())
            }
        );
        assert_eq!(
            decide(Some(&rotated_at(100)), true, 111, &graceful),
            Decision::RevokeFamily("f".into())
        );
    }

    #[test]
    fn without_blacklisting_a_rotated_token_still_works() {
        let lenient = RefreshPolicy {
            blacklist_after_rotation: false,
            ..STRICT
        };
        let record = TokenRecord {
            blacklisted: false,
            ..rotated_at(100)
        };
        assert_eq!(
            decide(Some(&record), true, 5_000, &lenient),
            Decision::Rotate
        );
    }

    #[test]
    fn a_family_past_its_lifetime_is_expired_however_recently_rotated() {
        let bounded = RefreshPolicy {
            family_lifetime: 1_000,
            ..STRICT
        };
        assert_eq!(
            decide(Some(&fresh()), true, 1_049, &bounded),
            Decision::Rotate
        );
        assert_eq!(
            decide(Some(&fresh()), true, 1_050, &bounded),
            Decision::Refuse(TokenError::Expired)
        );
        assert_eq!(
            decide(Some(&fresh()), true, 1_050, &STRICT),
            Decision::Rotate,
            "0 turns the lifetime off"
        );
        assert_eq!(
            decide(Some(&rotated_at(1_060)), true, 1_070, &bounded),
            Decision::RevokeFamily("f".into()),
            "a reuse is still detected"
        );
        let graceful = RefreshPolicy {
            reuse_grace: 30,
            ..bounded
        };
        assert_eq!(
            decide(Some(&rotated_at(1_060)), true, 1_070, &graceful),
            Decision::Refuse(TokenError::Expired),
            "no fresh pair in an ended family"
        );
    }

    #[test]
    fn an_inactive_users_refresh_is_refused_but_a_reuse_still_revokes() {
        assert_eq!(
            decide(Some(&fresh()), false, 100, &STRICT),
            Decision::InactiveUser
        );
        let graceful = RefreshPolicy {
            reuse_grace: 10,
            ..STRICT
        };
        assert_eq!(
            decide(Some(&rotated_at(100)), false, 105, &graceful),
            Decision::InactiveUser,
            "no retry for a disabled user"
        );
        assert_eq!(
            decide(Some(&rotated_at(100)), false, 100, &STRICT),
            Decision::RevokeFamily("f".into())
        );
        let blacklisted = TokenRecord {
            blacklisted: true,
            ..fresh()
        };
        assert_eq!(
            decide(Some(&blacklisted), false, 1, &STRICT),
            Decision::Refuse(TokenError::Blacklisted)
        );
    }

    #[test]
    fn blacklisted_revoked_and_unknown_tokens_are_refused() {
        let blacklisted = TokenRecord {
            blacklisted: true,
            ..fresh()
        };
        assert_eq!(
            decide(Some(&blacklisted), true, 1, &STRICT),
            Decision::Refuse(TokenError::Blacklisted)
        );
        let revoked = TokenRecord {
            family_revoked: true,
            ..rotated_at(1)
        };
        assert_eq!(
            decide(Some(&revoked), true, 1, &STRICT),
            Decision::Refuse(TokenError::Blacklisted)
        );
        assert!(matches!(
            decide(None, true, 1, &STRICT),
            Decision::Refuse(TokenError::Invalid(_))
        ));
    }
}

#[cfg(test)]
mod batch_tests {
    use super::decide_tests::fresh_in as fresh;
    use super::*;

    const STRICT: RefreshPolicy = RefreshPolicy {
        rotate: true,
        blacklist_after_rotation: true,
        reuse_grace: 0,
        family_lifetime: 0,
    };

    fn job(jti: &str, new: &str, policy: RefreshPolicy) -> RefreshJob {
        RefreshJob {
            jti: jti.into(),
            user_id: 1,
            rotated: Some((new.into(), 1_000)),
            policy,
            now: 100,
        }
    }

    fn plan_of(
        jobs: &[RefreshJob],
        records: &[(&str, TokenRecord)],
    ) -> (Vec<&'static str>, BatchWrites) {
        let jobs: Vec<&RefreshJob> = jobs.iter().collect();
        let records = records
            .iter()
            .map(|(jti, record)| (jti.to_string(), record.clone()))
            .collect();
        let (decisions, writes) = plan(&jobs, records, &HashSet::from([1]));
        let names = decisions
            .iter()
            .map(|decision| match decision {
                Decision::AccessOnly | Decision::Rotate | Decision::Retry { .. } => "done",
                Decision::InactiveUser => "inactive",
                Decision::Refuse(TokenError::Blacklisted) => "blacklisted",
                Decision::Refuse(_) => "refused",
                Decision::RevokeFamily(_) => "reuse",
            })
            .collect();
        (names, writes)
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn distinct_tokens_all_rotate_in_one_batch() {
        let (outcomes, writes) = plan_of(
            &[job("a", "a2", STRICT), job("b", "b2", STRICT)],
            &[("a", fresh("f")), ("b", fresh("g"))],
        );
        assert_eq!(outcomes, ["done", "done"]);
        assert_eq!(writes.blacklisted, strings(&["a", "b"]));
        assert_eq!(
            writes.replaced,
            [("a".into(), "a2".into()), ("b".into(), "b2".into())]
        );
        let families: Vec<_> = writes
            .new_tokens
            .iter()
            .map(|t| t.family_id.clone())
            .collect();
        assert_eq!(families, [Some("f".into()), Some("g".into())]);
        assert!(writes.revoked_families.is_empty());
    }

    #[test]
    fn the_same_token_twice_without_grace_rotates_once_then_revokes_its_family() {
        let (outcomes, writes) = plan_of(
            &[job("a", "a2", STRICT), job("a", "a3", STRICT)],
            &[("a", fresh("f"))],
        );
        assert_eq!(outcomes, ["done", "reuse"]);
        assert_eq!(writes.revoked_families, strings(&["f"]));
        // a2 is written, then blacklisted with the rest of its family.
        assert_eq!(writes.new_tokens.len(), 1);
    }

    #[test]
    fn a_retry_in_the_same_batch_supersedes_the_first_answer() {
        let graceful = RefreshPolicy {
            reuse_grace: 10,
            ..STRICT
        };
        let (outcomes, writes) = plan_of(
            &[job("a", "a2", graceful), job("a", "a3", graceful)],
            &[("a", fresh("f"))],
        );
        assert_eq!(outcomes, ["done", "done"]);
        // The first answer's token is blacklisted; a now points at a3.
        assert_eq!(writes.blacklisted, strings(&["a", "a2", "a"]));
        assert_eq!(writes.replaced, [("a".into(), "a3".into())]);
    }

    #[test]
    fn a_batch_run_again_after_its_commit_went_through_changes_nothing() {
        // The first attempt committed; its answer was lost with the connection.
        let committed = TokenRecord {
            blacklisted: true,
            rotated_at: Some(100),
            replaced_by: Some("a2".into()),
            ..fresh("f")
        };
        let (outcomes, writes) = plan_of(&[job("a", "a2", STRICT)], &[("a", committed.clone())]);
        assert_eq!(outcomes, ["done"]);
        assert_eq!(writes, BatchWrites::default());
        // Another token presented after that rotation is still a reuse.
        let (outcomes, _) = plan_of(&[job("a", "a3", STRICT)], &[("a", committed)]);
        assert_eq!(outcomes, ["reuse"]);
    }

    #[test]
    fn after_a_reuse_the_rest_of_the_family_is_refused_in_the_batch() {
        let rotated = TokenRecord {
            blacklisted: true,
            rotated_at: Some(50),
            replaced_by: Some("b".into()),
            ..fresh("f")
        };
        let (outcomes, writes) = plan_of(
            &[
                job("a", "x", STRICT),
                job("b", "b2", STRICT),
                job("c", "c2", STRICT),
            ],
            &[("a", rotated), ("b", fresh("f")), ("c", fresh("g"))],
        );
        assert_eq!(outcomes, ["reuse", "blacklisted", "done"]);
        assert_eq!(writes.revoked_families, strings(&["f"]));
        assert_eq!(writes.replaced, [("c".into(), "c2".into())]);
    }

    #[test]
    fn unknown_tokens_and_inactive_users_change_nothing() {
        let mut inactive = job("b", "b2", STRICT);
        inactive.user_id = 2;
        let (outcomes, writes) = plan_of(
            &[job("ghost", "g2", STRICT), inactive],
            &[(
                "b",
                TokenRecord {
                    user_id: 2,
                    ..fresh("f")
                },
            )],
        );
        assert_eq!(outcomes, ["refused", "inactive"]);
        assert_eq!(writes, BatchWrites::default());
    }
}
