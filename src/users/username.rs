//! Usernames: Django's rules after Unicode NFKC, as Django applies them, and
//! the form a username takes in a log line.

use std::fmt;

use icu_normalizer::ComposingNormalizerBorrowed;

/// Longest username, in characters (Django's default).
pub const MAX_CHARS: usize = 150;

/// Longest text looked at as a username, in bytes: NFKC never shrinks a
/// real name to a quarter, so anything longer is refused unread.
const MAX_RAW_BYTES: usize = MAX_CHARS * 4 * 4;

/// Why a username is refused.
#[derive(Debug, thiserror::Error)]
#[error("username must be 1 to 150 characters: letters, digits and @ . + - _")]
pub struct BadUsername;

/// The NFKC form of `raw` (so `ａｌｉｃｅ` is `alice` and `ﬁ` is `fi`),
/// if it follows Django's default rules: 1 to 150 characters, letters,
/// digits and `@.+-_`.
pub fn normalize_username(raw: &str) -> Result<String, BadUsername> {
    if raw.is_empty() || raw.len() > MAX_RAW_BYTES {
        return Err(BadUsername);
    }
    let name = ComposingNormalizerBorrowed::new_nfkc().normalize(raw);
    let allowed = |c: char| c.is_alphanumeric() || "@.+-_".contains(c);
    if name.is_empty() || name.chars().count() > MAX_CHARS || !name.chars().all(allowed) {
        return Err(BadUsername);
    }
    Ok(name.into_owned())
}

/// A username as a log line shows it (`?ForLog(name)`): quoted, cut to
/// 150 characters, and every character other than letters, digits, space
/// and printable ASCII escaped, as are `"` and `\\`, so that no name can end
/// a line, colour a terminal, or add a field or an entry of its own.
pub struct ForLog<'a>(pub &'a str);

impl fmt::Debug for ForLog<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX_CHARS {
                f.write_str("…")?;
                break;
            }
            let plain = c.is_alphanumeric() || c == ' ' || c.is_ascii_graphic();
            if plain && c != '"' && c != '\\' {
                fmt::Write::write_char(f, c)?;
            } else {
                write!(f, "{}", c.escape_unicode())?;
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_normalise_to_one_name() {
        assert_eq!(normalize_username("ａｌｉｃｅ").unwrap(), "alice");
        assert_eq!(normalize_username("ﬁ").unwrap(), "fi");
        assert_eq!(normalize_username("Ⅻ").unwrap(), "XII");
        assert_eq!(normalize_username("e\u{301}").unwrap(), "é");
    }

    #[test]
    fn django_rules_apply_after_normalising() {
        assert!(normalize_username(&"a".repeat(150)).is_ok());
        assert!(normalize_username(&"a".repeat(151)).is_err());
        assert!(normalize_username(&"a".repeat(64_000)).is_err());
        for bad in ["", "a b", "a/b", "a\nb", "\u{1b}[31m"] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn log_form_escapes_and_cuts() {
        let forged = "x\n2026-01-01T00:00:00Z INFO event=\"login_succeeded\" \u{1b}[0m";
        let shown = format!("{:?}", ForLog(forged));
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown}"
        );
        assert_eq!(shown.matches('"').count(), 2, "{shown}");
        assert!(shown.starts_with("\"x\\u{a}2026"), "{shown}");
        let long = format!("{:?}", ForLog(&"é".repeat(1_000)));
        assert_eq!(long.chars().count(), MAX_CHARS + 3);
        assert_eq!(format!("{:?}", ForLog("alice.b+c@x")), "\"alice.b+c@x\"");
    }
}
