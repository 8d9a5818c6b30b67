//! Watching a live deployment: its keys in the database, every server's
//! JWKS, and the tokens it issues, verified at every server until they
//! expire.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jwtd::testing::{Deployment, KeyState, StoredKey};
use reqwest::StatusCode;
use tokio::task::JoinSet;

use super::{SLACK, WITHIN, client, jwks_at, login, verify_at, wall};
use crate::helpers::{claims_of, kid_of};

/// How often they look.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// How often they log in (spread over the servers).
const LOGIN_EVERY: Duration = Duration::from_millis(600);

/// One key as the database had it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct KeyRow {
    pub(super) kid: String,
    pub(super) state: KeyState,
    pub(super) created_at: i64,
    pub(super) activated_at: Option<i64>,
    pub(super) deactivated_at: Option<i64>,
    pub(super) retired_at: Option<i64>,
    pub(super) has_private: bool,
}

impl From<&StoredKey> for KeyRow {
    fn from(key: &StoredKey) -> Self {
        KeyRow {
            kid: key.kid.clone(),
            state: key.state,
            created_at: key.created_at,
            activated_at: key.activated_at,
            deactivated_at: key.deactivated_at,
            retired_at: key.retired_at,
            has_private: key.sealed_private.is_some(),
        }
    }
}

/// Where a state comes in a key's life.
pub(super) fn rank(state: KeyState) -> u8 {
    match state {
        KeyState::Next => 0,
        KeyState::Active => 1,
        KeyState::Retiring => 2,
        KeyState::Retired => 3,
        KeyState::Revoked => 4,
    }
}

/// The database and every server's JWKS, read between `before` and `after`
/// (wall-clock seconds).
#[derive(Debug)]
pub(super) struct Sample {
    pub(super) before: f64,
    pub(super) after: f64,
    pub(super) keys: Vec<KeyRow>,
    pub(super) jwks: Vec<BTreeSet<String>>,
}

impl Sample {
    pub(super) fn key(&self, kid: &str) -> Option<&KeyRow> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub(super) fn in_state(&self, state: KeyState) -> Vec<&KeyRow> {
        self.keys.iter().filter(|k| k.state == state).collect()
    }

    pub(super) fn published(&self) -> BTreeSet<String> {
        self.keys
            .iter()
            .filter(|k| k.state.is_published())
            .map(|k| k.kid.clone())
            .collect()
    }
}

/// A token a server issued during the run.
#[derive(Debug)]
pub(super) struct Issued {
    pub(super) token: String,
    pub(super) kind: &'static str,
    pub(super) kid: String,
    pub(super) iat: i64,
    pub(super) exp: i64,
    pub(super) by: usize,
    pub(super) expiry_checked: bool,
}

/// Everything a live run saw.
pub(super) struct Observed {
    pub(super) samples: Vec<Sample>,
    pub(super) tokens: Vec<Issued>,
    /// The keys a moment after the run.
    pub(super) final_keys: Vec<KeyRow>,
    /// Answers that broke a rule while the run went on.
    pub(super) violations: Vec<String>,
    pub(super) verified: usize,
}

/// Watches the deployment for `run_for`: every `POLL_EVERY`, reads the
/// keys from the database and the JWKS of every server; every
/// `LOGIN_EVERY`, logs in at the next server in turn; every live token is
/// verified at every server until its `exp`, and once after it. The keys
/// are read once more a moment after the run, when the database holds
/// every handover the run's tokens may have seen (a server signs with the
/// next key from the instant it is due, and records that within a second).
pub(super) async fn watch(
    deployment: &Deployment,
    bases: &[String],
    (user, pw): (&str, &str),
    run_for: Duration,
) -> Observed {
    let client = client();
    let mut seen = Observed {
        samples: Vec::new(),
        tokens: Vec::new(),
        final_keys: Vec::new(),
        violations: Vec::new(),
        verified: 0,
    };
    let started = Instant::now();
    let mut next_login = started;
    let mut turn = 0;
    while started.elapsed() < run_for {
        let tick = Instant::now();
        take_sample(deployment, &client, bases, &mut seen).await;

        if Instant::now() >= next_login {
            let by = turn % bases.len();
            turn += 1;
            let (access, refresh) = login(&client, &bases[by], user, pw).await;
            for (kind, token) in [("access", access), ("refresh", refresh)] {
                let claims = claims_of(&token);
                seen.tokens.push(Issued {
                    kid: kid_of(&token),
                    iat: claims["iat"].as_i64().expect("iat"),
                    exp: claims["exp"].as_i64().expect("exp"),
                    token,
                    kind,
                    by,
                    expiry_checked: false,
                });
            }
            next_login += LOGIN_EVERY;
        }

        verify_live_tokens(&client, bases, &mut seen).await;

        let spent = tick.elapsed();
        if spent < POLL_EVERY {
            tokio::time::sleep(POLL_EVERY - spent).await;
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(WITHIN + SLACK)).await;
    let stored = deployment.keys().await.expect("read the keys");
    seen.final_keys = stored.iter().map(KeyRow::from).collect();
    seen
}

/// Reads the keys from the database and the JWKS of every server.
async fn take_sample(
    deployment: &Deployment,
    client: &reqwest::Client,
    bases: &[String],
    seen: &mut Observed,
) {
    let before = wall();
    let stored = deployment.keys().await.expect("read the keys");
    let mut jwks = Vec::new();
    for base in bases {
        let (kids, max_age) = jwks_at(client, base).await;
        match max_age {
            Some(age) if age <= 1 => {}
            other => seen.violations.push(format!(
                "{base}: JWKS max-age {other:?} is not at most jwks_max_age (1s)"
            )),
        }
        jwks.push(kids);
    }
    let after = wall();
    seen.samples.push(Sample {
        before,
        after,
        keys: stored.iter().map(KeyRow::from).collect(),
        jwks,
    });
}

/// Verifies, at every server at once, each token that has more than a
/// moment left (it must pass) and, once, each token a moment past its
/// `exp` (it must fail).
async fn verify_live_tokens(client: &reqwest::Client, bases: &[String], seen: &mut Observed) {
    let now = wall();
    let mut checks = JoinSet::new();
    for (index, issued) in seen.tokens.iter().enumerate() {
        let exp = issued.exp as f64;
        let alive = exp - now > 0.4;
        let dead = now - exp > 0.3 && !issued.expiry_checked;
        if !alive && !dead {
            continue;
        }
        for (server, base) in bases.iter().enumerate() {
            let client = client.clone();
            let base = base.clone();
            let token = issued.token.clone();
            checks.spawn(async move {
                let sent = wall();
                let (status, body) = verify_at(&client, &base, &token).await;
                (index, server, alive, sent, wall(), status, body)
            });
        }
    }
    while let Some(done) = checks.join_next().await {
        let (index, server, alive, sent, answered, status, body) = done.expect("verify task");
        let issued = &mut seen.tokens[index];
        let exp = issued.exp as f64;
        if alive {
            seen.verified += 1;
            // The server reads its clock between `sent` and `answered`.
            if status != StatusCode::OK && answered < exp {
                seen.violations.push(format!(
                    "{} token signed by {} (issued by server {} at iat={}, exp={}) got {status} \
                     {body} from server {server} at wall {sent:.2}..{answered:.2}, before its exp",
                    issued.kind, issued.kid, issued.by, issued.iat, issued.exp
                ));
            }
        } else {
            issued.expiry_checked = true;
            if status != StatusCode::UNAUTHORIZED && sent >= exp {
                seen.violations.push(format!(
                    "{} token (exp={}) got {status} {body} from server {server} at wall {sent:.2}, \
                     after its exp",
                    issued.kind, issued.exp
                ));
            }
        }
    }
}
