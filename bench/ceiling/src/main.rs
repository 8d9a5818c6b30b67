//! jwtd-bench: the helper bench/run.sh builds and calls.
//!
//! ```text
//! jwtd-bench ceiling [--threads 2] [--secs 2] [--reps 3] [--argon2 12288,3,1]
//!                    [--algorithms "RS256 PS256 ES256 ES384 EdDSA"]
//!     raw ops/s with keys parsed once: sign and verify per algorithm (aws-lc-rs,
//!     RSA 2048), and argon2id hashes/s; best of --reps; TSV `name threads ops_per_s`.
//! jwtd-bench mint --user NAME --out DIR --refresh N[,N...] [--distinct N]
//!     with the JWTD_* configuration (as `jwtd serve` reads it): opens the
//!     database (creating keys), then mints one access token (DIR/access.txt),
//!     --distinct more access tokens, one per line (DIR/access_distinct.txt),
//!     and, per N, a file DIR/refresh_<i>.txt of N refresh tokens, each from
//!     its own login (`jwtd::testing::Minter`: jwtd's session code, without
//!     the password hash).
//! jwtd-bench report --ceilings FILE --runs FILE
//!     the markdown table (and the targets) from run.sh's TSV.
//! jwtd-bench free-port
//!     a free TCP port on 127.0.0.1.
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use jwtd::testing::RawKey;
use jwtd::verifier::Algorithm;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ceiling") => ceiling(&args[1..]),
        Some("mint") => mint(&args[1..]),
        Some("report") => report(&args[1..]),
        Some("free-port") => free_port(),
        _ => Err("usage: jwtd-bench ceiling|mint|report|free-port [options]".into()),
    };
    if let Err(err) = result {
        eprintln!("jwtd-bench: {err}");
        std::process::exit(1);
    }
}

/// `--name value` options.
fn options(args: &[String]) -> Result<HashMap<String, String>, Error> {
    let mut map = HashMap::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let key = name
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument `{name}`"))?;
        let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        map.insert(key.to_owned(), value.clone());
    }
    Ok(map)
}

fn opt<T: std::str::FromStr>(
    map: &HashMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, Error> {
    match map.get(key) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("--{key}: cannot parse `{text}`").into()),
    }
}

// ---------------------------------------------------------------- ceiling

/// A JWS signing input the size jwtd signs: header with a 43-character kid,
/// claims with a 32-hex jti.
fn signing_input(alg: &str) -> Vec<u8> {
    use base64_lite::encode;
    let header = format!(
        r#"{{"alg":"{alg}","typ":"JWT","kid":"Xq3v9Yk1VbQz8cWmT2nLr5sHdJ0aPfGuE7iKoN4yB6C"}}"#
    );
    let claims = r#"{"token_type":"access","exp":1795000300,"iat":1795000000,"jti":"9f86d081884c7d659a2feaa0c55ad015","user_id":"1"}"#;
    format!(
        "{}.{}",
        encode(header.as_bytes()),
        encode(claims.as_bytes())
    )
    .into_bytes()
}

/// base64url without padding; a dozen lines rather than another dependency.
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len() * 4 / 3 + 3);
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

/// Ops/s of `op` on `threads` threads for `secs`: total calls over the
/// longest thread's time.
fn rate<F>(threads: usize, secs: f64, op: F) -> f64
where
    F: Fn(&mut Vec<u8>) + Sync,
{
    let barrier = Barrier::new(threads);
    let run = Duration::from_secs_f64(secs);
    let results: Vec<(u64, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut scratch = Vec::with_capacity(512);
                    op(&mut scratch); // warm caches and lazy initialisation
                    barrier.wait();
                    let start = Instant::now();
                    let mut calls = 0u64;
                    loop {
                        op(&mut scratch);
                        calls += 1;
                        let elapsed = start.elapsed();
                        if elapsed >= run {
                            return (calls, elapsed);
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let calls: u64 = results.iter().map(|r| r.0).sum();
    let longest = results.iter().map(|r| r.1).max().unwrap_or(run);
    calls as f64 / longest.as_secs_f64()
}

/// One algorithm's raw aws-lc-rs key (`jwtd::testing::RawKey`, parsed once
/// as jwtd's key ring does) with a signature over a typical signing input.
struct Baseline {
    alg: Algorithm,
    key: RawKey,
    input: Vec<u8>,
    signature: Vec<u8>,
}

impl Baseline {
    fn new(alg: Algorithm) -> Result<Self, Error> {
        // RSA keys of 2048 bits, jwtd's default.
        let key = RawKey::new(&jwtd::testing::generate_key(alg, 2048)?)?;
        let input = signing_input(alg.as_str());
        let mut signature = Vec::with_capacity(512);
        key.sign(&input, &mut signature);
        Ok(Self {
            alg,
            key,
            input,
            signature,
        })
    }
}

fn ceiling(args: &[String]) -> Result<(), Error> {
    let o = options(args)?;
    let threads: usize = opt(&o, "threads", 2)?;
    let secs: f64 = opt(&o, "secs", 2.0)?;
    let reps: usize = opt(&o, "reps", 3)?;
    let argon: String = opt(&o, "argon2", "12288,3,1".to_owned())?;
    let costs: Vec<u32> = argon
        .split(',')
        .map(|s| s.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("--argon2: expected m,t,p, got `{argon}`"))?;
    let [m, t, p] = costs[..] else {
        return Err(format!("--argon2: expected m,t,p, got `{argon}`").into());
    };

    let algorithms: String = opt(&o, "algorithms", "RS256 PS256 ES256 ES384 EdDSA".to_owned())?;
    let raws = (algorithms.split_whitespace())
        .map(|name| {
            let alg = name
                .parse::<Algorithm>()
                .map_err(|_| format!("--algorithms: unknown `{name}`"))?;
            Baseline::new(alg)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let params = argon2::Params::new(m, t, p, None).map_err(|e| e.to_string())?;
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);

    type Op<'a> = Box<dyn Fn(&mut Vec<u8>) + Sync + 'a>;
    let mut ops: Vec<(String, Op)> = Vec::new();
    for raw in &raws {
        let alg = raw.alg;
        ops.push((
            format!("{alg}_sign"),
            Box::new(|out| raw.key.sign(&raw.input, out)),
        ));
        ops.push((
            format!("{alg}_verify"),
            Box::new(|_| assert!(raw.key.verify_unparsed(&raw.input, &raw.signature))),
        ));
        ops.push((
            format!("{alg}_verify_parsed"),
            Box::new(|_| assert!(raw.key.verify(&raw.input, &raw.signature))),
        ));
    }
    ops.push((
        format!("argon2id_m{m}_t{t}_p{p}"),
        Box::new(|out: &mut Vec<u8>| {
            out.resize(32, 0);
            argon2
                .hash_password_into(b"bench-password-123", b"0123456789abcdef", out)
                .expect("argon2");
        }),
    ));
    // Repetitions go round all the operations, so a burst of load from
    // elsewhere hits one repetition of each rather than every repetition of
    // one; the best repetition is kept: a ceiling is what the machine can do.
    let mut best = vec![0.0f64; ops.len()];
    for _ in 0..reps.max(1) {
        for (index, (_, op)) in ops.iter().enumerate() {
            best[index] = best[index].max(rate(threads, secs, op));
        }
    }
    let mut stdout = std::io::stdout().lock();
    for ((name, _), figure) in ops.iter().zip(best) {
        writeln!(stdout, "{name}\t{threads}\t{figure:.1}")?;
    }
    stdout.flush()?;
    Ok(())
}

// ---------------------------------------------------------------- mint

fn mint(args: &[String]) -> Result<(), Error> {
    let o = options(args)?;
    let user: String = opt(&o, "user", "bench".to_owned())?;
    let out: PathBuf = o.get("out").ok_or("--out DIR is required")?.into();
    let counts: Vec<usize> = o
        .get("refresh")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| "--refresh: expected N[,N...]")?;
    let workers: usize = opt(&o, "workers", 4)?;
    let distinct: usize = opt(&o, "distinct", 0)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(mint_async(user, out, counts, distinct, workers.max(1)))
}

async fn mint_async(
    username: String,
    out: PathBuf,
    counts: Vec<usize>,
    distinct: usize,
    workers: usize,
) -> Result<(), Error> {
    use jwtd::clock::SystemClock;
    use jwtd::config::Config;
    use jwtd::testing::Minter;

    let config = Config::load(None)?;
    let minter = Minter::open(config, Arc::new(SystemClock)).await?;
    let user_id = minter.user_id(&username).await?;
    let access = minter.access(user_id)?;
    std::fs::write(out.join("access.txt"), format!("{access}\n"))?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(
        out.join("access_distinct.txt"),
    )?);
    for _ in 0..distinct {
        writeln!(file, "{}", minter.access(user_id)?)?;
    }
    file.flush()?;
    let started = Instant::now();
    let mut total = 0;
    for (index, &count) in counts.iter().enumerate() {
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..workers {
            let share = count / workers + usize::from(worker < count % workers);
            let minter = minter.clone();
            tasks.spawn(async move {
                let mut tokens = Vec::with_capacity(share);
                for _ in 0..share {
                    let (_, refresh) = minter.login(user_id).await?;
                    tokens.push(refresh);
                }
                Ok::<_, Error>(tokens)
            });
        }
        let mut file = std::io::BufWriter::new(std::fs::File::create(
            out.join(format!("refresh_{index}.txt")),
        )?);
        while let Some(tokens) = tasks.join_next().await {
            for token in tokens?? {
                writeln!(file, "{token}")?;
            }
        }
        file.flush()?;
        total += count;
    }
    minter.close().await;
    eprintln!(
        "minted {total} refresh tokens in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------- free-port

fn free_port() -> Result<(), Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?.port());
    Ok(())
}

// ---------------------------------------------------------------- report

/// One wrk run as run.sh records it.
struct Run {
    endpoint: String,
    alg: String,
    conc: u32,
    rps: f64,
    p50: f64,
    p99: f64,
    bad: u64,
    rss_kib: u64,
    cpu_ms: f64,
    note: String,
    /// Runs of this endpoint, algorithm and concurrency (`REPS`), and the
    /// range of their rates; the row shown is the median run.
    reps: usize,
    min_rps: f64,
    max_rps: f64,
}

/// One row per endpoint, algorithm and concurrency: the run with the median
/// rate, with the non-2xx of all runs summed and the highest peak RSS.
fn aggregate(runs: Vec<Run>) -> Vec<Run> {
    let mut groups: Vec<Vec<Run>> = Vec::new();
    for run in runs {
        match groups
            .iter_mut()
            .find(|g| g[0].endpoint == run.endpoint && g[0].alg == run.alg && g[0].conc == run.conc)
        {
            Some(group) => group.push(run),
            None => groups.push(vec![run]),
        }
    }
    groups
        .into_iter()
        .map(|mut group| {
            let n = group.len();
            let bad = group.iter().map(|r| r.bad).sum();
            let rss = group.iter().map(|r| r.rss_kib).max().unwrap_or(0);
            let notes: Vec<String> = group
                .iter()
                .filter(|r| !r.note.is_empty())
                .map(|r| r.note.clone())
                .collect();
            group.sort_by(|a, b| a.rps.total_cmp(&b.rps));
            let (min, max) = (group[0].rps, group[n - 1].rps);
            let mut median = group.swap_remove(n / 2);
            median.bad = bad;
            median.rss_kib = rss;
            median.note = notes.join("; ");
            median.reps = n;
            median.min_rps = min;
            median.max_rps = max;
            median
        })
        .collect()
}

fn parse_runs(text: &str) -> Result<Vec<Run>, Error> {
    let mut runs = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 9 {
            return Err(format!("bad run line: {line}").into());
        }
        let num = |i: usize| -> Result<f64, Error> {
            f[i].parse::<f64>()
                .map_err(|_| format!("bad number `{}` in: {line}", f[i]).into())
        };
        runs.push(Run {
            endpoint: f[0].to_owned(),
            alg: f[1].to_owned(),
            conc: num(2)? as u32,
            rps: num(3)?,
            p50: num(4)?,
            p99: num(5)?,
            bad: num(6)? as u64,
            rss_kib: num(7)? as u64,
            cpu_ms: num(8)?,
            note: f.get(9).map(|s| s.to_string()).unwrap_or_default(),
            reps: 1,
            min_rps: 0.0,
            max_rps: 0.0,
        });
    }
    Ok(runs)
}

fn endpoint_label(endpoint: &str) -> &str {
    match endpoint {
        "healthz" => "GET /healthz",
        "jwks" => "GET /.well-known/jwks.json",
        "jwks_304" => "GET /.well-known/jwks.json, If-None-Match (304)",
        "verify" => "POST /api/token/verify/",
        "verify_distinct" => "POST /api/token/verify/, a token not seen recently",
        "me" => "GET /api/me/",
        "refresh" => "POST /api/token/refresh/ (rotate + blacklist)",
        "login" => "POST /api/token/ (login)",
        other => other,
    }
}

fn human(rate: f64) -> String {
    if rate >= 10_000.0 {
        format!("{:.1} k", rate / 1000.0)
    } else if rate >= 100.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A target's verdict.
fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn report(args: &[String]) -> Result<(), Error> {
    let o = options(args)?;
    let ceilings_text = std::fs::read_to_string(o.get("ceilings").ok_or("--ceilings FILE")?)?;
    let runs = aggregate(parse_runs(&std::fs::read_to_string(
        o.get("runs").ok_or("--runs FILE")?,
    )?)?);
    let mut ceiling: HashMap<String, f64> = HashMap::new();
    let mut argon_label = String::from("argon2id");
    for line in ceilings_text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() >= 3
            && let Ok(v) = f[2].parse::<f64>()
        {
            if f[0].starts_with("argon2id") {
                argon_label = f[0].to_owned();
                ceiling.insert("argon2id".into(), v);
            } else {
                ceiling.insert(f[0].to_owned(), v);
            }
        }
    }
    let ceil = |name: &str| ceiling.get(name).copied().unwrap_or(f64::NAN);
    let healthz = |alg: &str, conc: u32| {
        runs.iter()
            .find(|r| r.endpoint == "healthz" && r.alg == alg && r.conc == conc)
            .map_or(f64::NAN, |r| r.rps)
    };

    let mut out = String::new();
    writeln!(
        out,
        "| endpoint | alg | c | req/s | p50 ms | p99 ms | non-2xx | peak RSS MiB | server CPU ms/req (cores busy) | ratio to its ceiling | target |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|")?;
    // (description, figure, met) for the checklist.
    let mut checks: Vec<(String, bool)> = Vec::new();
    for r in &runs {
        let h = healthz(&r.alg, r.conc);
        let vs_h = r.rps / h;
        let (ratio, target): (String, String) = match r.endpoint.as_str() {
            "healthz" => ("1.00 × /healthz".into(), String::new()),
            "jwks" | "jwks_304" => {
                let met = vs_h >= 0.9;
                checks.push((
                    format!(
                        "{} {} c={}: {:.2} × /healthz (≥ 0.90)",
                        endpoint_label(&r.endpoint),
                        r.alg,
                        r.conc,
                        vs_h
                    ),
                    met,
                ));
                (
                    format!("{vs_h:.2} × /healthz"),
                    format!("≥ 0.90 × /healthz: {}", verdict(met)),
                )
            }
            "verify" | "me" | "verify_distinct" => {
                let key = format!("{}_verify", r.alg);
                let c = ceil(&key);
                let vs_c = r.rps / c;
                let text = format!(
                    "{vs_c:.2} × raw {} verify 2t ({}/s); {vs_h:.2} × /healthz",
                    r.alg,
                    human(c)
                );
                // Measured against the lower ceiling: the signature check or
                // the HTTP stack itself, whichever limits the endpoint.
                let raw_verify = format!("raw {} verify", r.alg);
                let (value, what) = if c < h {
                    (vs_c, raw_verify.as_str())
                } else {
                    (vs_h, "/healthz")
                };
                let met = value >= 0.6;
                let target = if r.endpoint == "verify_distinct" {
                    format!("(shown, not a target: {value:.2} × {what})")
                } else if r.conc == 64 {
                    checks.push((
                        format!(
                            "{} {} c=64: {value:.2} × {what} (≥ 0.60)",
                            endpoint_label(&r.endpoint),
                            r.alg
                        ),
                        met,
                    ));
                    format!("≥ 0.60 × {what}: {}", verdict(met))
                } else {
                    format!("(c=64 only; {value:.2} × {what})")
                };
                (text, target)
            }
            "refresh" => {
                // A refresh verifies one token and signs two: its crypto
                // alone on 2 threads caps it at this rate.
                let sign = ceil(&format!("{}_sign", r.alg));
                let verify = ceil(&format!("{}_verify_parsed", r.alg));
                let crypto = 1.0 / (2.0 / sign + 1.0 / verify);
                let vs_crypto = r.rps / crypto;
                let text = format!(
                    "{vs_crypto:.2} × raw {} crypto of a refresh 2t (2 signs + 1 verify: {}/s)",
                    r.alg,
                    human(crypto)
                );
                // Where the crypto is cheap the store's commits limit
                // refreshes, hence a fixed rate instead.
                let (met, goal) = if 0.7 * crypto >= 5000.0 {
                    (r.rps >= 5000.0, "≥ 5 k req/s".to_owned())
                } else {
                    (vs_crypto >= 0.7, "≥ 0.70 × crypto".to_owned())
                };
                checks.push((
                    format!(
                        "{} {} c={}: {} req/s = {vs_crypto:.2} × raw crypto of a refresh ({goal})",
                        endpoint_label(&r.endpoint),
                        r.alg,
                        r.conc,
                        human(r.rps)
                    ),
                    met,
                ));
                (text, format!("{goal}: {}", verdict(met)))
            }
            "login" => {
                let c = ceil("argon2id");
                let vs = r.rps / c;
                let met = vs >= 0.9;
                checks.push((
                    format!(
                        "{} {} c={}: {:.2} × argon2 ceiling (≥ 0.90)",
                        endpoint_label(&r.endpoint),
                        r.alg,
                        r.conc,
                        vs
                    ),
                    met,
                ));
                (
                    format!("{vs:.2} × {argon_label} 2t ({}/s)", human(c)),
                    format!("≥ 0.90 × argon2: {}", verdict(met)),
                )
            }
            _ => (String::new(), String::new()),
        };
        let mut bad = r.bad.to_string();
        if !r.note.is_empty() {
            bad = format!("{bad} ({})", r.note);
        }
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.4} ({:.2}) | {} | {} |",
            endpoint_label(&r.endpoint),
            r.alg,
            r.conc,
            if r.reps > 1 {
                format!(
                    "{} ({}–{})",
                    human(r.rps),
                    human(r.min_rps),
                    human(r.max_rps)
                )
            } else {
                human(r.rps)
            },
            ms(r.p50),
            ms(r.p99),
            bad,
            r.rss_kib as f64 / 1024.0,
            r.cpu_ms,
            r.cpu_ms * r.rps / 1000.0,
            ratio,
            target
        )?;
    }

    // Targets that hold for every row.
    let bad_total: u64 = runs.iter().map(|r| r.bad).sum();
    checks.push((
        format!(
            "non-2xx responses over all {} rows: {bad_total} (0)",
            runs.len()
        ),
        bad_total == 0,
    ));
    let rss64 = runs
        .iter()
        .filter(|r| r.conc == 64)
        .map(|r| (r.rss_kib, r))
        .max_by_key(|(k, _)| *k);
    if let Some((kib, worst)) = rss64 {
        checks.push((
            format!(
                "peak server RSS at c=64: {:.1} MiB, worst at {} {} (≤ 50 MiB)",
                kib as f64 / 1024.0,
                endpoint_label(&worst.endpoint),
                worst.alg
            ),
            kib as f64 / 1024.0 <= 50.0,
        ));
    }
    for r in runs
        .iter()
        .filter(|r| r.endpoint.starts_with("verify") && r.conc == 64)
    {
        checks.push((
            format!(
                "{} p99 at c=64, {}: {} ms (≤ 10 ms)",
                endpoint_label(&r.endpoint),
                r.alg,
                ms(r.p99)
            ),
            r.p99 <= 10.0,
        ));
    }

    writeln!(out)?;
    writeln!(
        out,
        "Raw ceilings on 2 threads (aws-lc-rs, keys parsed once; same run):"
    )?;
    writeln!(out)?;
    for line in ceilings_text.lines() {
        let Some(name) = line.split('\t').next() else {
            continue;
        };
        let Some((alg, op)) = name.split_once('_') else {
            continue;
        };
        let alg = if alg.starts_with("RS") || alg.starts_with("PS") {
            format!("{alg}-2048")
        } else {
            alg.to_owned()
        };
        let label = match op {
            "sign" => "sign",
            "verify" => "verify (UnparsedPublicKey)",
            "verify_parsed" => "verify (ParsedPublicKey)",
            _ => continue,
        };
        writeln!(out, "- {alg} {label}: {}/s", human(ceil(name)))?;
    }
    writeln!(out, "- {argon_label}: {}/s", human(ceil("argon2id")))?;
    writeln!(out)?;
    let met = checks.iter().filter(|c| c.1).count();
    writeln!(out, "Targets: {met} of {} met.", checks.len())?;
    writeln!(out)?;
    for (text, ok) in &checks {
        writeln!(out, "- [{}] {text}", if *ok { "x" } else { " " })?;
    }
    print!("{out}");
    Ok(())
}
