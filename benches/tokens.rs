//! Token benchmarks: per algorithm (RS256-2048 and ES256), the raw aws-lc-rs
//! sign and verify with a key parsed once, against jwtd's own issue and
//! verify with the same key (`jwtd::testing::TokenBench`, the code the
//! endpoints run), and its cached verify (what `/api/me/` and
//! `/api/token/verify/` call) for a token it has verified before and for
//! one it has not seen lately.
//!
//! `cargo bench --bench tokens` runs criterion's groups (`RS256/…`,
//! `ES256/…`), then prints jwtd's overhead: issue time / raw sign time and
//! verify time / raw verify time, from a timed loop of its own (median of
//! a few short rounds, one thread). `OVERHEAD_SECS` sets the length of each
//! round (default 0.3 s). Under `cargo test --benches` every benchmark runs
//! once and the overhead table is skipped.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey,
    VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group};

use jwtd::clock::{Clock, SystemClock};
use jwtd::config::Config;
use jwtd::testing::{TokenBench, generate_key};
use jwtd::verifier::Algorithm;

/// Distinct tokens for the not-seen-lately figure: more than the 4096
/// `verify_cached` keeps, so each is gone before its turn comes again.
const UNSEEN_TOKENS: usize = 5000;

/// The raw aws-lc-rs key, parsed once from the same PKCS#8 jwtd uses.
enum RawKey {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair),
}

/// Everything one algorithm's benchmarks need, built once.
struct Fixture {
    alg: Algorithm,
    raw: RawKey,
    rng: SystemRandom,
    /// Public key as aws-lc-rs parses it once (the verify ceiling).
    parsed: ParsedPublicKey,
    /// Public key bytes for `UnparsedPublicKey` (parsed on every verify).
    public_bytes: Vec<u8>,
    verify_alg: &'static dyn VerificationAlgorithm,
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

        let (raw, public_bytes, verify_alg): (_, Vec<u8>, &'static dyn VerificationAlgorithm) =
            match alg {
                Algorithm::Rs256 => {
                    let pair =
                        aws_lc_rs::rsa::KeyPair::from_pkcs8(&generated.pkcs8).expect("RSA PKCS#8");
                    let public = pair.public_key().as_ref().to_vec();
                    (RawKey::Rsa(pair), public, &RSA_PKCS1_2048_8192_SHA256)
                }
                Algorithm::Es256 => {
                    let pair = EcdsaKeyPair::from_pkcs8(
                        &ECDSA_P256_SHA256_FIXED_SIGNING,
                        &generated.pkcs8,
                    )
                    .expect("EC PKCS#8");
                    let public = pair.public_key().as_ref().to_vec();
                    (RawKey::Ec(pair), public, &ECDSA_P256_SHA256_FIXED)
                }
                other => panic!("the benchmark measures RS256 and ES256, not {other}"),
            };
        let parsed = ParsedPublicKey::new(verify_alg, &public_bytes).expect("public key");

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
            rng: SystemRandom::new(),
            parsed,
            public_bytes,
            verify_alg,
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
        fixture
            .parsed
            .verify_sig(&fixture.signing_input, &fresh)
            .expect("raw signature verifies");
        fixture
    }

    /// One raw signature over the signing input, into `out`.
    fn raw_sign(&self, out: &mut Vec<u8>) {
        match &self.raw {
            RawKey::Rsa(pair) => {
                out.resize(pair.public_modulus_len(), 0);
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, &self.signing_input, out)
                    .expect("RSA sign");
            }
            RawKey::Ec(pair) => {
                let sig = pair.sign(&self.rng, &self.signing_input).expect("EC sign");
                out.clear();
                out.extend_from_slice(sig.as_ref());
            }
        }
    }

    /// One raw verification with the public key parsed once.
    fn raw_verify(&self) {
        self.parsed
            .verify_sig(black_box(&self.signing_input), black_box(&self.signature))
            .expect("raw verify");
    }

    /// One raw verification that parses the public key each time.
    fn raw_verify_unparsed(&self) {
        UnparsedPublicKey::new(self.verify_alg, &self.public_bytes)
            .verify(black_box(&self.signing_input), black_box(&self.signature))
            .expect("raw verify (unparsed)");
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
        vec![
            Fixture::new(Algorithm::Rs256),
            Fixture::new(Algorithm::Es256),
        ]
    })
}

criterion_group!(groups, benches);

/// Nanoseconds per call of `op`, timed in a loop of about `round`.
fn time_per_op(round: Duration, mut op: impl FnMut()) -> f64 {
    // Warm up, and size batches so the clock is read rarely.
    let start = Instant::now();
    let mut warm = 0u64;
    while start.elapsed() < round / 10 {
        op();
        warm += 1;
    }
    let batch = (warm / 20).max(1);
    let start = Instant::now();
    let mut calls = 0u64;
    loop {
        for _ in 0..batch {
            op();
        }
        calls += batch;
        let elapsed = start.elapsed();
        if elapsed >= round {
            return elapsed.as_nanos() as f64 / calls as f64;
        }
    }
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
        "jwtd overhead over raw aws-lc-rs (1 thread, median of {ROUNDS} x {:.1} s per figure)",
        round.as_secs_f64()
    );
    println!();
    println!(
        "| alg | raw sign µs | jwtd issue µs | issue / sign | raw verify µs (parsed key) | jwtd verify µs | verify / raw verify | raw verify µs (unparsed key) | verify / unparsed | verify seen before µs | seen / raw verify | verify not seen lately µs | unseen / raw verify |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in fixtures() {
        let mut out = Vec::with_capacity(512);
        let (mut sign, mut issue, mut verify, mut jverify, mut unparsed) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut seen, mut unseen) = (vec![], vec![]);
        // Interleaved rounds, so a noisy neighbour hits every figure alike.
        for _ in 0..ROUNDS {
            sign.push(time_per_op(round, || {
                f.raw_sign(&mut out);
                black_box(&out);
            }));
            issue.push(time_per_op(round, || {
                black_box(f.jwtd_issue());
            }));
            verify.push(time_per_op(round, || f.raw_verify()));
            jverify.push(time_per_op(round, || f.jwtd_verify()));
            unparsed.push(time_per_op(round, || f.raw_verify_unparsed()));
            seen.push(time_per_op(round, || f.jwtd_verify_seen()));
            unseen.push(time_per_op(round, || f.jwtd_verify_unseen()));
        }
        let [sign, issue, verify, jverify, unparsed, seen, unseen] =
            [sign, issue, verify, jverify, unparsed, seen, unseen].map(median);
        println!(
            "| {} | {:.2} | {:.2} | **{:.2}×** | {:.2} | {:.2} | **{:.2}×** | {:.2} | {:.2}× | {:.2} | {:.2}× | {:.2} | **{:.2}×** |",
            f.alg,
            sign / 1e3,
            issue / 1e3,
            issue / sign,
            verify / 1e3,
            jverify / 1e3,
            jverify / verify,
            unparsed / 1e3,
            jverify / unparsed,
            seen / 1e3,
            seen / verify,
            unseen / 1e3,
            unseen / verify,
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
