//! Token benchmarks: per algorithm (RS256 and PS256 with 2048-bit RSA,
//! ES256, ES384 and EdDSA), the raw aws-lc-rs sign and verify with a key
//! parsed once, against jwtd's own issue and verify with the same key
//! (`jwtd::testing::TokenBench`, the code the endpoints run), and its
//! cached verify (what `/api/me/` and `/api/token/verify/` call) for a
//! token it has verified before and for one it has not seen lately.
//!
//! `cargo bench --bench tokens` runs criterion's groups (`RS256/…`,
//! `ES256/…`, …), then prints jwtd's overhead: issue time / raw sign time
//! and verify time / raw verify time, against the target of 1.15×. Each is
//! timed by a loop of its own on one thread, in millisecond batches that
//! alternate with the raw operation's, so that load from elsewhere on a
//! shared machine slows both alike; the ratio is the median of a few
//! rounds. `OVERHEAD_SECS` sets the length of each round (default 0.3 s);
//! `BENCH_ALGORITHMS` picks algorithms (default all, e.g. `"EdDSA ES384"`).
//! Under `cargo test --benches` every benchmark runs once and the overhead
//! table is skipped.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group};

use jwtd::clock::{Clock, SystemClock};
use jwtd::config::Config;
use jwtd::testing::{RawKey, TokenBench, generate_key};
use jwtd::verifier::Algorithm;

/// Distinct tokens for the not-seen-lately figure: more than the 4096
/// `verify_cached` keeps, so each is gone before its turn comes again.
const UNSEEN_TOKENS: usize = 5000;

/// The overhead jwtd may add to the raw operation, issue and verify alike.
const OVERHEAD_TARGET: f64 = 1.15;

/// Everything one algorithm's benchmarks need, built once.
struct Fixture {
    alg: Algorithm,
    /// The same key as raw aws-lc-rs holds it: the baseline.
    raw: RawKey,
    /// jwtd's own issue and verify, with the same key.
    jwtd: TokenBench,
    /// A token jwtd issued: its signing input and raw signature.
    token: String,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    /// More tokens than `verify_cached` remembers, taken in turn.
    unseen: Vec<String>,
    next_unseen: AtomicUsize,
}

impl Fixture {
    fn new(alg: Algorithm) -> Self {
        let generated = generate_key(alg, 2048).expect("key generation");
        let jwtd = TokenBench::new(&Config::default(), &generated, SystemClock.now())
            .expect("jwtd's side");

        let raw = RawKey::new(&generated).expect("raw aws-lc-rs key");

        // A typical signing input: exactly what jwtd signs for an access token.
        let token = jwtd.issue_access("42").expect("issue");
        let (input, sig_b64) = token.rsplit_once('.').expect("compact JWS");
        let signing_input = input.as_bytes().to_vec();
        let signature = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .expect("base64url signature");
        let unseen = (0..UNSEEN_TOKENS)
            .map(|_| jwtd.issue_access("42").expect("issue"))
            .collect();
        let fixture = Self {
            alg,
            raw,
            jwtd,
            token,
            signing_input,
            signature,
            unseen,
            next_unseen: AtomicUsize::new(0),
        };
        // Sanity: every path agrees before anything is timed.
        fixture.raw_verify();
        fixture.raw_verify_unparsed();
        fixture.jwtd_verify();
        fixture.jwtd_verify_seen();
        fixture.jwtd_verify_unseen();
        let mut fresh = Vec::new();
        fixture.raw_sign(&mut fresh);
        assert!(
            fixture.raw.verify(&fixture.signing_input, &fresh),
            "raw signature verifies"
        );
        fixture
    }

    /// One raw signature over the signing input, into `out`.
    fn raw_sign(&self, out: &mut Vec<u8>) {
        self.raw.sign(&self.signing_input, out);
    }

    /// One raw verification with the public key parsed once.
    fn raw_verify(&self) {
        let verified =
            (self.raw).verify(black_box(&self.signing_input), black_box(&self.signature));
        assert!(verified, "raw verify");
    }

    /// One raw verification that parses the public key each time.
    fn raw_verify_unparsed(&self) {
        let verified =
            (self.raw).verify_unparsed(black_box(&self.signing_input), black_box(&self.signature));
        assert!(verified, "raw verify (unparsed)");
    }

    /// One jwtd issue of an access token.
    fn jwtd_issue(&self) -> String {
        self.jwtd.issue_access(black_box("42")).expect("issue")
    }

    /// One jwtd cached verify of an access token it verified before.
    fn jwtd_verify_seen(&self) {
        self.jwtd_verify_cached(&self.token);
    }

    /// One jwtd cached verify of an access token it has not
    /// seen in its last 4096 (the next of `unseen`).
    fn jwtd_verify_unseen(&self) {
        let index = self.next_unseen.fetch_add(1, Ordering::Relaxed) % self.unseen.len();
        self.jwtd_verify_cached(&self.unseen[index]);
    }

    fn jwtd_verify_cached(&self, token: &str) {
        self.jwtd
            .verify_cached(black_box(token))
            .expect("verify_cached");
    }

    /// One full jwtd verify of an access token.
    fn jwtd_verify(&self) {
        self.jwtd.verify(black_box(&self.token)).expect("verify");
    }
}

fn bench_algorithm(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group(fixture.alg.as_str());
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut out = Vec::with_capacity(512);
    group.bench_function("raw_sign", |b| {
        b.iter(|| {
            fixture.raw_sign(&mut out);
            black_box(&out);
        })
    });
    group.bench_function("jwtd_issue", |b| b.iter(|| black_box(fixture.jwtd_issue())));
    group.bench_function("raw_verify_parsed", |b| b.iter(|| fixture.raw_verify()));
    group.bench_function("raw_verify_unparsed", |b| {
        b.iter(|| fixture.raw_verify_unparsed())
    });
    group.bench_function("jwtd_verify", |b| b.iter(|| fixture.jwtd_verify()));
    group.bench_function("jwtd_verify_seen", |b| {
        b.iter(|| fixture.jwtd_verify_seen())
    });
    group.bench_function("jwtd_verify_unseen", |b| {
        b.iter(|| fixture.jwtd_verify_unseen())
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    for fixture in fixtures() {
        bench_algorithm(c, fixture);
    }
}

fn fixtures() -> &'static [Fixture] {
    static FIXTURES: std::sync::OnceLock<Vec<Fixture>> = std::sync::OnceLock::new();
    FIXTURES.get_or_init(|| {
        let chosen = std::env::var("BENCH_ALGORITHMS").unwrap_or_default();
        Algorithm::ALL
            .into_iter()
            .filter(|alg| chosen.is_empty() || chosen.split_whitespace().any(|c| c == alg.as_str()))
            .map(Fixture::new)
            .collect()
    })
}

criterion_group!(groups, benches);

/// Calls of `op` that take about `span`.
fn batch_for(span: Duration, op: &mut impl FnMut()) -> u64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < span {
        op();
        calls += 1;
    }
    calls.max(1)
}

/// Nanoseconds per call of `base` and of `op`, timed over about `round` in
/// alternating batches of about a millisecond each: a burst of load from
/// elsewhere falls on both alike, so their ratio holds where either
/// figure alone moves.
fn time_paired(round: Duration, mut base: impl FnMut(), mut op: impl FnMut()) -> (f64, f64) {
    // Warm up, and size batches so the clock is read rarely.
    let span = Duration::from_millis(1);
    let (base_batch, op_batch) = (batch_for(span, &mut base), batch_for(span, &mut op));
    let (mut base_time, mut op_time) = (Duration::ZERO, Duration::ZERO);
    let (mut base_calls, mut op_calls) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < round {
        let at = Instant::now();
        for _ in 0..base_batch {
            base();
        }
        base_time += at.elapsed();
        base_calls += base_batch;
        let at = Instant::now();
        for _ in 0..op_batch {
            op();
        }
        op_time += at.elapsed();
        op_calls += op_batch;
    }
    (
        base_time.as_nanos() as f64 / base_calls as f64,
        op_time.as_nanos() as f64 / op_calls as f64,
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Prints jwtd's overhead over the raw backend, per algorithm.
fn print_overhead() {
    let round = std::env::var("OVERHEAD_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_millis(300), Duration::from_secs_f64);
    const ROUNDS: usize = 5;
    println!();
    println!(
        "jwtd overhead over raw aws-lc-rs (1 thread; each figure timed over {:.1} s in 1 ms batches alternating with its raw baseline; medians of {ROUNDS} rounds)",
        round.as_secs_f64()
    );
    println!();
    println!(
        "| alg | raw sign µs | jwtd issue µs | issue / sign | raw verify µs (parsed key) | jwtd verify µs | verify / raw verify | raw verify µs (unparsed key) | unparsed / parsed | verify seen before µs | seen / raw verify | verify not seen lately µs | unseen / raw verify |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut missed = Vec::new();
    for f in fixtures() {
        let mut out = Vec::with_capacity(512);
        let mut raw_sign = || {
            f.raw_sign(&mut out);
            black_box(&out);
        };
        let issue_op = || {
            black_box(f.jwtd_issue());
        };
        // Each figure is timed paired with its raw baseline; a ratio is
        // the median of the rounds' ratios, a time the median of rounds.
        let mut rounds: Vec<[(f64, f64); 5]> = Vec::new();
        for _ in 0..ROUNDS {
            rounds.push([
                time_paired(round, &mut raw_sign, issue_op),
                time_paired(round, || f.raw_verify(), || f.jwtd_verify()),
                time_paired(round, || f.raw_verify(), || f.raw_verify_unparsed()),
                time_paired(round, || f.raw_verify(), || f.jwtd_verify_seen()),
                time_paired(round, || f.raw_verify(), || f.jwtd_verify_unseen()),
            ]);
        }
        let figure = |i: usize| {
            let times = median(rounds.iter().map(|r| r[i].1).collect());
            let ratio = median(rounds.iter().map(|r| r[i].1 / r[i].0).collect());
            (times, ratio)
        };
        let sign = median(rounds.iter().map(|r| r[0].0).collect());
        let verify = median(rounds.iter().map(|r| r[1].0).collect());
        let [
            (issue, issue_ratio),
            (jverify, verify_ratio),
            (unparsed, unparsed_ratio),
            (seen, seen_ratio),
            (unseen, unseen_ratio),
        ] = [0, 1, 2, 3, 4].map(figure);
        let mut judged = |what: &str, ratio: f64| {
            let met = ratio <= OVERHEAD_TARGET;
            if !met {
                missed.push(format!("{} {what} {ratio:.2}×", f.alg));
            }
            format!("**{ratio:.2}×** {}", if met { "met" } else { "MISSED" })
        };
        let (issue_verdict, verify_verdict) =
            (judged("issue", issue_ratio), judged("verify", verify_ratio));
        println!(
            "| {} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {} | {:.2} | {:.2}× | {:.2} | {:.2}× | {:.2} | **{:.2}×** |",
            f.alg,
            sign / 1e3,
            issue / 1e3,
            issue_verdict,
            verify / 1e3,
            jverify / 1e3,
            verify_verdict,
            unparsed / 1e3,
            unparsed_ratio,
            seen / 1e3,
            seen_ratio,
            unseen / 1e3,
            unseen_ratio,
        );
    }
    println!();
    println!(
        "issue = claims + jti + JSON + base64url + sign with the cached key; \
         verify = parse header and claims (strict JSON) + key lookup by kid + \
         signature check + claim checks; seen before = SHA-256 of the token + \
         lookup + time window check (the token was verified once already); \
         not seen lately = SHA-256 + a miss + verify + keeping the claims."
    );
    println!();
    if missed.is_empty() {
        println!(
            "Target: issue and verify within {OVERHEAD_TARGET}× of the raw operation for every algorithm: met."
        );
    } else {
        println!(
            "Target: issue and verify within {OVERHEAD_TARGET}× of the raw operation: MISSED by {}.",
            missed.join(", ")
        );
    }
}

fn main() {
    // criterion_main! without the macro, so the overhead table comes last.
    groups();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` does not (test
    // mode: each benchmark ran once above, skip the timed loops).
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list") {
        print_overhead();
    }
}
