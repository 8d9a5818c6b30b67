//! Group commit for refreshes: one task writes every refresh of this
//! process. Refreshes that arrive while a batch is being written wait and
//! go together in the next one: one transaction, one fsync for all of
//! them, and no reply before the commit that made its refresh durable.
//!
//! Inside a batch the refreshes are decided one after the other on the same
//! transaction, so each sees what the ones before it wrote (two refreshes of
//! one token in a batch still give one success). If a batch fails, each of
//! its refreshes is tried again alone, so one bad refresh cannot fail the
//! others and each gets its own error.

use tokio::sync::{mpsc, oneshot};

use super::refresh::{self, Decision, RefreshPolicy};
use super::{SessionError, TokenError, TokenType};
use crate::clock::UnixTime;
use crate::store::{NewToken, RefreshTransaction, Store, StoreError};

/// Most refreshes written in one transaction, which holds SQLite's write
/// lock (other processes' writers wait) for about 0.1 ms per refresh.
const MAX_BATCH: usize = 256;

/// Refreshes waiting for the writer before new ones wait to be queued.
const QUEUE: usize = 4 * MAX_BATCH;

/// What a refresh changes in the store, decided inside the transaction.
#[derive(Debug, Clone)]
pub struct RefreshJob {
    /// The presented refresh token's id.
    pub jti: String,
    /// Its user.
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
}

type Reply = oneshot::Sender<Result<(), SessionError>>;

/// A refresh's effect, known once its batch committed.
enum Outcome {
    Done,
    Refused(SessionError),
    ReuseDetected { family: String },
}

impl RefreshWriter {
    /// Starts the writer task on the current Tokio runtime. It stops when
    /// the last clone of the writer is dropped.
    pub fn start(store: Store) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, queue));
        Self { jobs }
    }

    /// Applies `job` and waits until it is durable (or refused).
    pub async fn apply(&self, job: RefreshJob) -> Result<(), SessionError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || SessionError::Store(StoreError::Query(sqlx::Error::PoolClosed));
        self.jobs.send((job, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_batches(store: Store, mut queue: mpsc::Receiver<(RefreshJob, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs: Vec<&RefreshJob> = batch.iter().map(|(job, _)| job).collect();
        let outcomes = match commit(&store, &jobs).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(err) if jobs.len() == 1 => vec![Err(err)],
            Err(err) => {
                tracing::warn!(error = %err, refreshes = jobs.len(), "refresh batch failed; committing each alone");
                let mut alone = Vec::with_capacity(jobs.len());
                for job in &jobs {
                    alone.push(commit(&store, &[job]).await.map(|mut one| one.remove(0)));
                }
                alone
            }
        };
        for ((job, reply), outcome) in batch.drain(..).zip(outcomes) {
            let _ = reply.send(answer(&job, outcome));
        }
    }
}

/// Decides and writes `jobs` in order in one transaction.
async fn commit(store: &Store, jobs: &[&RefreshJob]) -> Result<Vec<Outcome>, StoreError> {
    let mut tx = store.refresh_transaction().await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        outcomes.push(write(&mut tx, job).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// One refresh: what [`refresh::decide`] says, written into `tx`.
async fn write(tx: &mut RefreshTransaction, job: &RefreshJob) -> Result<Outcome, StoreError> {
    let (record, user_active) = tx.record_and_user(&job.jti, job.user_id).await?;
    let decision = refresh::decide(record.as_ref(), job.now, &job.policy);
    match &decision {
        Decision::Refuse(err) => return Ok(Outcome::Refused((*err).into())),
        Decision::RevokeFamily(family) => {
            tx.revoke_family(family, job.now).await?;
            return Ok(Outcome::ReuseDetected {
                family: family.clone(),
            });
        }
        Decision::AccessOnly | Decision::Rotate | Decision::Retry { .. } => {}
    }
    if !user_active {
        return Ok(Outcome::Refused(SessionError::NoActiveAccount));
    }
    if let Some((jti, expires_at)) = &job.rotated {
        let new = NewToken {
            jti,
            user_id: job.user_id,
            token_type: TokenType::Refresh,
            family_id: record.as_ref().and_then(|r| r.family_id.as_deref()),
            expires_at: *expires_at,
        };
        if let Decision::Retry {
            superseded: Some(superseded),
        } = &decision
        {
            tx.blacklist(superseded, job.now).await?;
        }
        let blacklist_old = job.policy.blacklist_after_rotation;
        tx.rotate(&job.jti, &new, blacklist_old, job.now).await?;
    }
    Ok(Outcome::Done)
}

/// The requester's answer, with the audit events of a committed reuse.
fn answer(job: &RefreshJob, outcome: Result<Outcome, StoreError>) -> Result<(), SessionError> {
    match outcome? {
        Outcome::Done => Ok(()),
        Outcome::Refused(err) => Err(err),
        Outcome::ReuseDetected { family } => {
            let user_id = job.user_id;
            tracing::warn!(event = "refresh_reuse_detected", user_id, family = %family);
            tracing::warn!(event = "family_revoked", user_id, family = %family);
            Err(TokenError::Blacklisted.into())
        }
    }
}
