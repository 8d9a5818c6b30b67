//! Settings: defaults, then an optional TOML file, then `JWTD_<NAME>`
//! environment variables (SPEC §2). Every source goes through one
//! [`Config::set`], so a setting is parsed and checked the same way wherever
//! it comes from, and an unknown key or bad value is one error naming it.

mod duration;

pub use duration::{format_duration, parse_duration};

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::verifier::Algorithm;

/// The environment variable that names a config file.
pub const CONFIG_ENV: &str = "JWTD_CONFIG";
/// Prefix of every setting's environment variable.
const ENV_PREFIX: &str = "JWTD_";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting that does not exist.
    #[error("{origin}: unknown setting `{key}`")]
    UnknownKey {
        /// Where it came from (file path or variable).
        origin: String,
        /// The setting's name as written.
        key: String,
    },
    /// A setting with a value that cannot be used.
    #[error("{origin}: setting `{key}`: {reason}")]
    BadValue {
        /// Where it came from.
        origin: String,
        /// The setting's name.
        key: String,
        /// What is wrong with the value, and what would do.
        reason: String,
    },
    /// The config file could not be read or is not TOML.
    #[error("config file {path}: {reason}")]
    File {
        /// The config file as named on the command line or in `JWTD_CONFIG`.
        path: String,
        /// What went wrong, on one line.
        reason: String,
    },
}

/// Where the 32-byte master keys that encrypt private keys come from; the
/// first seals, every one opens (SPEC §8).
#[derive(Clone)]
pub enum MasterKeySource {
    /// Given directly, as standard base64, comma-separated (`master_key`).
    Inline(Zeroizing<String>),
    /// Read from a file, one key a line (`master_key_file`); created with
    /// one fresh key when absent.
    File(PathBuf),
}

impl fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline([redacted])"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// The argon2id cost of new hashes; hashes keep the cost they were made
/// with. The default is one of OWASP's recommended argon2id settings,
/// which it rates as equally strong: 12 MiB, 3 passes, 1 lane. Of those it
/// is the one whose memory, one work area per core kept for reuse, keeps
/// the server under 50 MiB during a login flood on a 2-core machine; 19
/// MiB and 2 passes costs the same CPU and 14 MiB more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 12_288,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl HashCost {
    /// argon2's parameters, or why they are refused.
    pub fn params(&self) -> Result<argon2::Params, String> {
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|err| err.to_string())
    }
}

/// Every setting of SPEC §2, parsed.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://PATH`.
    pub database_url: String,
    /// Listen address.
    pub bind: SocketAddr,
    /// Algorithm of newly created signing keys: RS256, ES256, ES384, PS256
    /// or EdDSA.
    pub algorithm: Algorithm,
    /// Modulus size of new RSA keys (RS256 and PS256): 2048, 3072 or 4096.
    pub rsa_bits: u32,
    /// Lifetime of access tokens.
    pub access_token_lifetime: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_token_lifetime: Duration,
    /// Lifetime of a sliding token's access use.
    pub sliding_token_lifetime: Duration,
    /// How long a sliding token can be refreshed.
    pub sliding_token_refresh_lifetime: Duration,
    /// Refresh returns a new refresh token too.
    pub rotate_refresh_tokens: bool,
    /// The old refresh token is blacklisted when rotated.
    pub blacklist_after_rotation: bool,
    /// Record each login's time.
    pub update_last_login: bool,
    /// `iss` claim set on issue and required on verify.
    pub issuer: Option<String>,
    /// `aud` claim set on issue and required on verify.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Name of the claim holding the user's id.
    pub user_id_claim: String,
    /// Name of the claim holding the token type.
    pub token_type_claim: String,
    /// Name of the claim holding the token id.
    pub jti_claim: String,
    /// Accepted `Authorization` schemes (e.g. `Bearer`).
    pub auth_header_types: Vec<String>,
    /// Window in which a rotated-away refresh token is taken as a retry.
    pub refresh_reuse_grace: Duration,
    /// How long a key signs before the next one takes over.
    pub key_rotation_interval: Duration,
    /// How long a new key is published before it signs.
    pub key_prepublish: Duration,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age: Duration,
    /// Where the master key comes from.
    pub master_key: MasterKeySource,
    /// Failed logins allowed per username from one client address per 15
    /// minutes; 0: no limit.
    pub login_failures_per_user: u32,
    /// Failed logins allowed per client address per 15 minutes; 0: no limit.
    pub login_failures_per_address: u32,
    /// Failed logins allowed per username from all addresses per 15
    /// minutes; 0: no limit.
    pub login_failures_per_account: u32,
    /// How long after its login a refresh family stops refreshing; zero:
    /// never.
    pub refresh_family_lifetime: Duration,
    /// argon2id cost of new password hashes.
    pub password_hash: HashCost,
    /// How long a connection may take to send a whole request head, from
    /// its opening or the end of its previous response.
    pub request_header_timeout: Duration,
    /// How long a request's body may take to arrive once its head has.
    pub request_timeout: Duration,
    /// Where `GET /metrics` is served; never on `bind`. `None`: no metrics.
    pub metrics_bind: Option<SocketAddr>,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// How long requests in flight may take to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines with `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://jwtd.db".into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            algorithm: Algorithm::Rs256,
            rsa_bits: 2048,
            access_token_lifetime: Duration::from_secs(5 * 60),
            refresh_token_lifetime: Duration::from_secs(86_400),
            sliding_token_lifetime: Duration::from_secs(5 * 60),
            sliding_token_refresh_lifetime: Duration::from_secs(86_400),
            rotate_refresh_tokens: true,
            blacklist_after_rotation: true,
            update_last_login: false,
            issuer: None,
            audience: None,
            leeway: Duration::ZERO,
            user_id_claim: "user_id".into(),
            token_type_claim: "token_type".into(),
            jti_claim: "jti".into(),
            auth_header_types: vec!["Bearer".into()],
            refresh_reuse_grace: Duration::ZERO,
            key_rotation_interval: Duration::from_secs(30 * 86_400),
            key_prepublish: Duration::from_secs(86_400),
            jwks_max_age: Duration::from_secs(5 * 60),
            master_key: MasterKeySource::File(PathBuf::from("keys/master.key")),
            login_failures_per_user: 10,
            login_failures_per_address: 100,
            login_failures_per_account: 1_000,
            refresh_family_lifetime: Duration::from_secs(30 * 86_400),
            password_hash: HashCost::default(),
            request_header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            metrics_bind: None,
            log_format: LogFormat::Text,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Loads the configuration the way every command does: defaults, then
    /// the file named by `file` (or `JWTD_CONFIG`), then `JWTD_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let from_env = env
            .iter()
            .find(|(name, _)| name == CONFIG_ENV)
            .map(|(_, value)| PathBuf::from(value));
        let mut config = Self::default();
        if let Some(path) = file.map(Path::to_path_buf).or(from_env) {
            let text = std::fs::read_to_string(&path).map_err(|err| ConfigError::File {
                path: path.display().to_string(),
                reason: err.to_string(),
            })?;
            config.apply_toml(&text, &path.display().to_string())?;
        }
        config.apply_env(env)?;
        config.check()?;
        Ok(config)
    }

    /// Applies the settings of a TOML document; `origin` names it in errors.
    pub fn apply_toml(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|err: toml::de::Error| ConfigError::File {
                    path: origin.to_owned(),
                    reason: one_line(&err.to_string()),
                })?;
        let origin = format!("config file {origin}");
        for (key, value) in table {
            let text = toml_value_text(&value).ok_or_else(|| ConfigError::BadValue {
                origin: origin.clone(),
                key: key.clone(),
                reason: "must be a string, number, boolean or list of strings".into(),
            })?;
            self.set(&key, &text, &origin)?;
        }
        Ok(())
    }

    /// Applies `JWTD_<NAME>` variables; other variables are ignored.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if name == CONFIG_ENV {
                continue;
            }
            self.set(
                &key.to_ascii_lowercase(),
                &value,
                &format!("environment variable {name}"),
            )?;
        }
        Ok(())
    }

    /// Sets one setting from its text form.
    pub fn set(&mut self, key: &str, value: &str, origin: &str) -> Result<(), ConfigError> {
        let bad = |reason: String| ConfigError::BadValue {
            origin: origin.to_owned(),
            key: key.to_owned(),
            reason,
        };
        match key {
            "database_url" => self.database_url = parse_database_url(value).map_err(bad)?,
            "bind" => {
                self.bind = value
                    .parse()
                    .map_err(|_| bad(format!("`{value}` is not an address like 127.0.0.1:8000")))?
            }
            "algorithm" => self.algorithm = value.parse().map_err(bad)?,
            "rsa_bits" => {
                self.rsa_bits = match value.trim() {
                    "2048" => 2048,
                    "3072" => 3072,
                    "4096" => 4096,
                    _ => return Err(bad(format!("`{value}` is not 2048, 3072 or 4096"))),
                }
            }
            "access_token_lifetime" => self.access_token_lifetime = positive(value).map_err(bad)?,
            "refresh_token_lifetime" => {
                self.refresh_token_lifetime = positive(value).map_err(bad)?
            }
            "sliding_token_lifetime" => {
                self.sliding_token_lifetime = positive(value).map_err(bad)?
            }
            "sliding_token_refresh_lifetime" => {
                self.sliding_token_refresh_lifetime = positive(value).map_err(bad)?
            }
            "rotate_refresh_tokens" => self.rotate_refresh_tokens = boolean(value).map_err(bad)?,
            "blacklist_after_rotation" => {
                self.blacklist_after_rotation = boolean(value).map_err(bad)?
            }
            "update_last_login" => self.update_last_login = boolean(value).map_err(bad)?,
            "issuer" => self.issuer = optional(value),
            "audience" => self.audience = optional(value),
            "leeway" => self.leeway = parse_duration(value).map_err(bad)?,
            "user_id_claim" => self.user_id_claim = claim_name(value).map_err(bad)?,
            "token_type_claim" => self.token_type_claim = claim_name(value).map_err(bad)?,
            "jti_claim" => self.jti_claim = claim_name(value).map_err(bad)?,
            "auth_header_types" => self.auth_header_types = header_types(value).map_err(bad)?,
            "refresh_reuse_grace" => {
                self.refresh_reuse_grace = parse_duration(value).map_err(bad)?
            }
            "key_rotation_interval" => self.key_rotation_interval = positive(value).map_err(bad)?,
            "key_prepublish" => self.key_prepublish = parse_duration(value).map_err(bad)?,
            "jwks_max_age" => self.jwks_max_age = parse_duration(value).map_err(bad)?,
            "master_key" => {
                self.master_key = MasterKeySource::Inline(Zeroizing::new(value.trim().to_owned()))
            }
            "master_key_file" => self.master_key = MasterKeySource::File(PathBuf::from(value)),
            "login_failures_per_user" => {
                self.login_failures_per_user = count(value).map_err(bad)?
            }
            "password_hash_memory" => self.password_hash.memory_kib = count(value).map_err(bad)?,
            "password_hash_iterations" => {
                self.password_hash.iterations = count(value).map_err(bad)?
            }
            "password_hash_parallelism" => {
                self.password_hash.parallelism = count(value).map_err(bad)?
            }
            "login_failures_per_address" => {
                self.login_failures_per_address = count(value).map_err(bad)?
            }
            "request_header_timeout" => {
                self.request_header_timeout = positive(value).map_err(bad)?
            }
            "request_timeout" => self.request_timeout = positive(value).map_err(bad)?,
            "metrics_bind" => {
                self.metrics_bind = match optional(value) {
                    None => None,
                    Some(addr) => Some(addr.parse().map_err(|_| {
                        bad(format!("`{value}` is not an address like 127.0.0.1:9100"))
                    })?),
                }
            }
            "log_format" => {
                self.log_format = match value.trim() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(bad(format!("`{value}` is not text or json"))),
                }
            }
            "shutdown_timeout" => self.shutdown_timeout = positive(value).map_err(bad)?,
            "login_failures_per_account" => {
                self.login_failures_per_account = count(value).map_err(bad)?
            }
            "refresh_family_lifetime" => {
                self.refresh_family_lifetime = parse_duration(value).map_err(bad)?
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    origin: origin.to_owned(),
                    key: key.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Checks the rules that involve more than one setting.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::BadValue {
            origin: "configuration".into(),
            key: key.into(),
            reason,
        };
        if self.jwks_max_age > self.key_prepublish {
            return Err(bad(
                "jwks_max_age",
                format!(
                    "{} is longer than key_prepublish ({}): partners could miss a new key",
                    format_duration(self.jwks_max_age),
                    format_duration(self.key_prepublish)
                ),
            ));
        }
        if self.metrics_bind == Some(self.bind) && self.bind.port() != 0 {
            return Err(bad(
                "metrics_bind",
                format!(
                    "{} is also `bind`: metrics are served apart from the API",
                    self.bind
                ),
            ));
        }
        if let Err(reason) = self.password_hash.params() {
            return Err(bad(
                "password_hash_memory",
                format!("argon2 refuses this cost: {reason}"),
            ));
        }
        let names = [
            ("user_id_claim", &self.user_id_claim),
            ("token_type_claim", &self.token_type_claim),
            ("jti_claim", &self.jti_claim),
        ];
        for (i, (key, name)) in names.iter().enumerate() {
            if names[..i].iter().any(|(_, other)| other == name) {
                return Err(bad(
                    key,
                    format!("`{name}` is already used by another claim"),
                ));
            }
        }
        Ok(())
    }

    /// The SQLite file `database_url` names (meaningless for PostgreSQL).
    pub fn database_path(&self) -> PathBuf {
        PathBuf::from(self.database_url.trim_start_matches("sqlite://"))
    }

    /// `database_url` as messages show it: without a PostgreSQL password.
    pub fn database_name(&self) -> String {
        crate::store::redacted(&self.database_url)
    }
}

fn parse_database_url(value: &str) -> Result<String, String> {
    crate::store::Location::parse(value).map(|_| value.to_owned())
}

fn positive(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration.is_zero() {
        return Err("must be longer than 0s".into());
    }
    Ok(duration)
}

fn count(value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a whole number (0 turns the limit off)"))
}

fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{value}` is not true or false")),
    }
}

fn optional(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Claims that jwtd sets itself and a configurable name must not shadow.
const RESERVED_CLAIMS: [&str; 7] = ["exp", "iat", "nbf", "iss", "aud", "sub", "refresh_exp"];

fn claim_name(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 64 || value.chars().any(|c| c.is_control()) {
        return Err(format!("`{value}` is not a usable claim name"));
    }
    if RESERVED_CLAIMS.contains(&value) {
        return Err(format!("`{value}` is a registered claim jwtd sets itself"));
    }
    Ok(value.to_owned())
}

fn header_types(value: &str) -> Result<Vec<String>, String> {
    let types: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if types.is_empty() || types.iter().any(|t| t.contains(char::is_whitespace)) {
        return Err(format!(
            "`{value}` must be a comma-separated list like Bearer,JWT"
        ));
    }
    Ok(types)
}

fn toml_value_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(|items| items.join(",")),
        _ => None,
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_then_environment() {
        let mut config = Config::default();
        config
            .apply_toml(
                "access_token_lifetime = \"10m\"\nrsa_bits = 3072\n",
                "x.toml",
            )
            .unwrap();
        config
            .apply_env(env(&[
                ("JWTD_ACCESS_TOKEN_LIFETIME", "1h"),
                ("HOME", "/root"),
            ]))
            .unwrap();
        assert_eq!(config.access_token_lifetime, Duration::from_secs(3_600));
        assert_eq!(config.rsa_bits, 3072);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::default().apply_toml("acces_token_lifetime = \"5m\"", "x.toml");
        assert_eq!(
            err.unwrap_err().to_string(),
            "config file x.toml: unknown setting `acces_token_lifetime`"
        );
        let err = Config::default().apply_env(env(&[("JWTD_NOPE", "1")]));
        assert_eq!(
            err.unwrap_err().to_string(),
            "environment variable JWTD_NOPE: unknown setting `nope`"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::default().apply_env(env(&[("JWTD_RSA_BITS", "1024")]));
        assert_eq!(
            err.unwrap_err().to_string(),
            "environment variable JWTD_RSA_BITS: setting `rsa_bits`: `1024` is not 2048, 3072 or 4096"
        );
        let err = Config::default().apply_env(env(&[("JWTD_ALGORITHM", "HS256")]));
        assert_eq!(
            err.unwrap_err().to_string(),
            "environment variable JWTD_ALGORITHM: setting `algorithm`: \
             `HS256` is not RS256, ES256, ES384, PS256 or EdDSA"
        );
        // JOSE names are case-sensitive.
        let err = Config::default().apply_env(env(&[("JWTD_ALGORITHM", "EDDSA")]));
        assert!(err.unwrap_err().to_string().contains("`algorithm`"));
    }

    #[test]
    fn every_algorithm_is_accepted_by_its_jose_name() {
        for (name, alg) in [
            ("RS256", Algorithm::Rs256),
            ("ES256", Algorithm::Es256),
            ("ES384", Algorithm::Es384),
            ("PS256", Algorithm::Ps256),
            ("EdDSA", Algorithm::EdDsa),
        ] {
            let mut config = Config::default();
            config.apply_env(env(&[("JWTD_ALGORITHM", name)])).unwrap();
            assert_eq!(config.algorithm, alg);
            assert_eq!(alg.to_string(), name);
        }
    }

    #[test]
    fn jwks_max_age_cannot_outlive_prepublication() {
        let mut config = Config::default();
        config
            .apply_env(env(&[("JWTD_JWKS_MAX_AGE", "2d")]))
            .unwrap();
        assert!(
            config
                .check()
                .unwrap_err()
                .to_string()
                .contains("jwks_max_age")
        );
    }

    #[test]
    fn a_password_hash_cost_argon2_refuses_is_named() {
        let mut config = Config::default();
        config
            .apply_env(env(&[("JWTD_PASSWORD_HASH_MEMORY", "1")]))
            .unwrap();
        assert!(
            config
                .check()
                .unwrap_err()
                .to_string()
                .contains("password_hash_memory")
        );
    }

    #[test]
    fn debug_hides_an_inline_master_key() {
        let mut config = Config::default();
        config.set("master_key", "c2VjcmV0", "test").unwrap();
        assert!(!format!("{config:?}").contains("c2VjcmV0"));
    }
}
