//! What jwtd counts for Prometheus (SPEC §8): tokens issued, logins,
//! refreshes, verifications, signing time and rotations, as atomic
//! counters in one process-wide [`METRICS`], rendered in the text format.
//! Every label value comes from a fixed set named here, so no request can
//! create a series.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::verifier::Algorithm;

/// This process's counters.
pub static METRICS: Metrics = Metrics::new();

/// The kinds of token jwtd issues (`token_type` label).
#[derive(Debug, Clone, Copy)]
pub enum Issued {
    /// An access token.
    Access,
    /// A refresh token.
    Refresh,
    /// A sliding token.
    Sliding,
}

impl Issued {
    const ALL: [Issued; 3] = [Issued::Access, Issued::Refresh, Issued::Sliding];

    fn label(self) -> &'static str {
        match self {
            Issued::Access => "access",
            Issued::Refresh => "refresh",
            Issued::Sliding => "sliding",
        }
    }
}

const ALGORITHMS: [Algorithm; Algorithm::ALL.len()] = Algorithm::ALL;

/// `alg`'s place in [`Algorithm::ALL`], the order its series are kept in.
fn algorithm_index(alg: Algorithm) -> usize {
    (ALGORITHMS.iter().position(|&known| known == alg)).unwrap_or_default()
}

/// How a login ended (`outcome` label).
#[derive(Debug, Clone, Copy)]
pub enum Login {
    /// Tokens issued.
    Success,
    /// Unknown user, wrong password or inactive account.
    BadCredentials,
    /// Refused by the failed-login throttle.
    Throttled,
}

impl Login {
    const ALL: [Login; 3] = [Login::Success, Login::BadCredentials, Login::Throttled];

    fn label(self) -> &'static str {
        match self {
            Login::Success => "success",
            Login::BadCredentials => "bad_credentials",
            Login::Throttled => "throttled",
        }
    }
}

/// How a refresh ended (`outcome` label).
#[derive(Debug, Clone, Copy)]
pub enum Refresh {
    /// A new access and refresh token; the presented one is rotated away.
    Rotated,
    /// A new access token; rotation is off.
    AccessOnly,
    /// A client's retry within `refresh_reuse_grace`.
    Grace,
    /// A rotated-away token presented again: its family is revoked.
    ReuseDetected,
    /// A blacklisted token or one of a revoked family.
    Blacklisted,
    /// Malformed, badly signed, expired, unknown, or of an inactive user.
    Invalid,
}

impl Refresh {
    const ALL: [Refresh; 6] = [
        Refresh::Rotated,
        Refresh::AccessOnly,
        Refresh::Grace,
        Refresh::ReuseDetected,
        Refresh::Blacklisted,
        Refresh::Invalid,
    ];

    fn label(self) -> &'static str {
        match self {
            Refresh::Rotated => "rotated",
            Refresh::AccessOnly => "access_only",
            Refresh::Grace => "grace",
            Refresh::ReuseDetected => "reuse_detected",
            Refresh::Blacklisted => "blacklisted",
            Refresh::Invalid => "invalid",
        }
    }
}

/// What checking a presented token's signature and claims found
/// (`result` label).
#[derive(Debug, Clone, Copy)]
pub enum Verification {
    /// Signature and claims hold.
    Valid,
    /// Past its `exp`.
    Expired,
    /// Anything else: malformed, badly signed, unknown key, wrong type.
    Invalid,
}

impl Verification {
    const ALL: [Verification; 3] = [
        Verification::Valid,
        Verification::Expired,
        Verification::Invalid,
    ];

    fn label(self) -> &'static str {
        match self {
            Verification::Valid => "valid",
            Verification::Expired => "expired",
            Verification::Invalid => "invalid",
        }
    }
}

/// Upper bounds of the signing-time buckets, in seconds: 10 µs to 100 ms.
const SIGN_BUCKETS: [f64; 13] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1,
];

/// Upper bounds of the request-time buckets, in seconds: 100 µs to 10 s.
pub const REQUEST_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A Prometheus histogram over fixed bucket bounds.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; N],
    overflow: AtomicU64,
    sum_nanos: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    /// An empty histogram with `bounds` (ascending, in seconds).
    pub const fn new(bounds: &'static [f64; N]) -> Self {
        Self {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            overflow: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = self.bounds.iter().position(|&bound| seconds <= bound);
        match bucket {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name`, with
    /// `labels` (`key="value",` pairs, possibly empty) before `le`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.overflow.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let bare = labels.trim_end_matches(',');
        let braces = |text: &str| {
            if text.is_empty() {
                String::new()
            } else {
                format!("{{{text}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(bare));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(bare));
    }
}

/// The counters themselves; see [`METRICS`].
#[derive(Debug)]
pub struct Metrics {
    issued: [[AtomicU64; ALGORITHMS.len()]; Issued::ALL.len()],
    logins: [AtomicU64; Login::ALL.len()],
    refreshes: [AtomicU64; Refresh::ALL.len()],
    verifications: [AtomicU64; Verification::ALL.len()],
    sign_duration: Histogram<{ SIGN_BUCKETS.len() }>,
    key_rotations: AtomicU64,
}

impl Metrics {
    const fn new() -> Self {
        Self {
            issued: [const { [const { AtomicU64::new(0) }; ALGORITHMS.len()] }; Issued::ALL.len()],
            logins: [const { AtomicU64::new(0) }; Login::ALL.len()],
            refreshes: [const { AtomicU64::new(0) }; Refresh::ALL.len()],
            verifications: [const { AtomicU64::new(0) }; Verification::ALL.len()],
            sign_duration: Histogram::new(&SIGN_BUCKETS),
            key_rotations: AtomicU64::new(0),
        }
    }

    /// A token was signed, taking `took` (whether or not it is handed out).
    pub fn signed(&self, took: Duration) {
        self.sign_duration.observe(took);
    }

    /// A token signed with `alg` was handed out.
    pub fn issued(&self, kind: Issued, alg: Algorithm) {
        self.issued[kind as usize][algorithm_index(alg)].fetch_add(1, Ordering::Relaxed);
    }

    /// A login ended with `outcome`.
    pub fn login(&self, outcome: Login) {
        self.logins[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A refresh ended with `outcome`.
    pub fn refresh(&self, outcome: Refresh) {
        self.refreshes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A presented token was checked.
    pub fn verification(&self, result: Verification) {
        self.verifications[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// This process made a next key the signing key.
    pub fn key_rotated(&self) {
        self.key_rotations.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the counters, in the text format, to `out`.
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "jwtd_tokens_issued_total",
            "counter",
            "Tokens handed out, by type and algorithm.",
        );
        for kind in Issued::ALL {
            for alg in ALGORITHMS {
                let count =
                    self.issued[kind as usize][algorithm_index(alg)].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "jwtd_tokens_issued_total{{token_type=\"{}\",alg=\"{}\"}} {count}",
                    kind.label(),
                    alg.as_str()
                );
            }
        }
        let logins = Login::ALL.map(|o| (o.label(), &self.logins[o as usize]));
        labelled_counter(
            out,
            "jwtd_logins_total",
            "Logins by outcome.",
            "outcome",
            &logins,
        );
        let refreshes = Refresh::ALL.map(|o| (o.label(), &self.refreshes[o as usize]));
        labelled_counter(
            out,
            "jwtd_refreshes_total",
            "Refreshes by outcome.",
            "outcome",
            &refreshes,
        );
        let verifications = Verification::ALL.map(|r| (r.label(), &self.verifications[r as usize]));
        labelled_counter(
            out,
            "jwtd_token_verifications_total",
            "Presented tokens checked, by result.",
            "result",
            &verifications,
        );
        family(
            out,
            "jwtd_sign_duration_seconds",
            "histogram",
            "Time to sign one token (refused refreshes sign too).",
        );
        self.sign_duration
            .render(out, "jwtd_sign_duration_seconds", "");
        family(
            out,
            "jwtd_key_rotations_total",
            "counter",
            "Next keys this process made the signing key.",
        );
        let _ = writeln!(
            out,
            "jwtd_key_rotations_total {}",
            self.key_rotations.load(Ordering::Relaxed)
        );
    }
}

/// Writes a counter family with one label: a line per `(value, count)`.
fn labelled_counter(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    counts: &[(&str, &AtomicU64)],
) {
    family(out, name, "counter", help);
    for (value, count) in counts {
        let count = count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        static BOUNDS: [f64; 2] = [0.001, 0.01];
        let histogram = Histogram::new(&BOUNDS);
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_secs(1));
        let mut out = String::new();
        histogram.render(&mut out, "t", "route=\"/x\",");
        assert_eq!(
            out,
            "t_bucket{route=\"/x\",le=\"0.001\"} 1\n\
             t_bucket{route=\"/x\",le=\"0.01\"} 2\n\
             t_bucket{route=\"/x\",le=\"+Inf\"} 3\n\
             t_sum{route=\"/x\"} 1.0055\n\
             t_count{route=\"/x\"} 3\n"
        );
    }
}
