//! Time-limited access tokens for WebSocket upgrade URLs: `?token=<expiry>.<mac>`.
//!
//! `expiry` is a Unix time in seconds (the token is valid through that second), `mac` is
//! HMAC-SHA256, keyed with the secret file's bytes, over `path + "\n" + expiry`, in unpadded
//! base64url (43 characters). `path` is the request target's path without its query (`/` for a
//! URL without one), so a token opens one path and nothing else. The server verifies, the load
//! generator and `wsbench token` mint; they share this module without depending on each other.
//! Nothing here reads the clock: callers pass the time, so tests need no waiting.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted, in bytes: a short key makes forging a matter of guessing it.
pub const MIN_SECRET_LEN: usize = 16;

/// The query parameter that carries the token.
pub const QUERY_KEY: &str = "token";

/// Why a secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the token secret {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the token secret {} has {len} bytes; it needs at least {MIN_SECRET_LEN} (e.g. `head -c 32 /dev/urandom | base64 > {}`)", path.display(), path.display())]
    TooShort { path: PathBuf, len: usize },
}

/// Why an upgrade's token was refused. Each has its own counter on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The URL has no `token` parameter.
    Missing,
    /// Not `<digits>.<base64url>`; counted with the forged ones.
    Malformed,
    /// Well formed, but the MAC does not match this path and expiry under our secret.
    Forged,
    /// Genuine, but its expiry (Unix seconds) has passed.
    Expired { expiry: u64 },
}

/// The HMAC key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct TokenSecret(Vec<u8>);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSecret({} bytes)", self.0.len())
    }
}

impl TokenSecret {
    /// Reads the secret from `path`: the file's bytes, trailing whitespace (a final newline
    /// from an editor or `echo`) left out, at least [`MIN_SECRET_LEN`] of them.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let bytes = std::fs::read(path).map_err(|source| SecretError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes).ok_or_else(|| SecretError::TooShort {
            path: path.to_owned(),
            len: bytes.trim_ascii_end().len(),
        })
    }

    /// The secret `bytes` (trailing whitespace left out); `None` when too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let key = bytes.trim_ascii_end();
        (key.len() >= MIN_SECRET_LEN).then(|| Self(key.to_vec()))
    }

    fn mac(&self, path: &str, expiry: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expiry.to_string().as_bytes());
        mac
    }

    /// The token for `path` valid through the Unix second `expiry`.
    pub fn mint(&self, path: &str, expiry: u64) -> String {
        let tag = self.mac(path, expiry).finalize().into_bytes();
        format!("{expiry}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The token for `path` valid for `ttl` from `now` (rounded up to whole seconds).
    pub fn mint_for(&self, path: &str, ttl: Duration, now: SystemTime) -> String {
        let ttl_s = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        self.mint(path, unix_seconds(now).saturating_add(ttl_s))
    }

    /// Checks `token` (the query parameter's value, if any) for `path` at Unix second `now`.
    /// The MAC is compared in constant time and before the expiry, so an expired forgery is
    /// a forgery.
    pub fn verify(&self, path: &str, token: Option<&str>, now: u64) -> Result<(), Rejection> {
        let token = token.ok_or(Rejection::Missing)?;
        let (expiry, tag) = token.split_once('.').ok_or(Rejection::Malformed)?;
        if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::Malformed);
        }
        let expiry: u64 = expiry.parse().map_err(|_| Rejection::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| Rejection::Malformed)?;
        self.mac(path, expiry)
            .verify_slice(&tag)
            .map_err(|_| Rejection::Forged)?;
        if now > expiry {
            return Err(Rejection::Expired { expiry });
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A request target split into its path (`/` when empty) and its query, if any.
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    (if path.is_empty() { "/" } else { path }, query)
}

/// The value of the first `token` parameter of `query`. Tokens never need percent-encoding,
/// so none is undone: an encoded token fails as malformed.
pub fn token_in_query(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(QUERY_KEY)?.strip_prefix('='))
}

/// `target` (path and optional query) with `token` added as the `token` parameter.
pub fn with_token(target: &str, token: &str) -> String {
    let (path, query) = split_target(target);
    match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}&{QUERY_KEY}={token}"),
        _ => format!("{path}?{QUERY_KEY}={token}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> TokenSecret {
        TokenSecret::from_bytes(b"0123456789abcdef0123\n").unwrap()
    }

    #[test]
    fn a_minted_token_verifies_until_its_expiry_and_not_after() {
        let s = secret();
        let t = s.mint("/", 1_000);
        let (expiry, tag) = t.split_once('.').unwrap();
        assert_eq!((expiry, tag.len()), ("1000", 43));
        assert_eq!(s.verify("/", Some(&t), 999), Ok(()));
        assert_eq!(s.verify("/", Some(&t), 1_000), Ok(()));
        assert_eq!(s.verify("/", Some(&t), 1_001), Err(Rejection::Expired { expiry: 1_000 }));
    }

    #[test]
    fn forged_malformed_and_missing_tokens_are_told_apart() {
        let s = secret();
        let t = s.mint("/", 1_000);
        assert_eq!(s.verify("/", None, 0), Err(Rejection::Missing));
        // Another path, another expiry, another key: each is a forgery.
        assert_eq!(s.verify("/room/1", Some(&t), 0), Err(Rejection::Forged));
        let later = t.replacen("1000", "1001", 1);
        assert_eq!(s.verify("/", Some(&later), 0), Err(Rejection::Forged));
        let other = TokenSecret::from_bytes(b"another secret of 16+").unwrap();
        assert_eq!(other.verify("/", Some(&t), 0), Err(Rejection::Forged));
        // An expired forgery is a forgery.
        assert_eq!(s.verify("/", Some(&later), 5_000), Err(Rejection::Forged));
        for bad in ["", "1000", ".abc", "x.abc", "-1.abc", "1000.not base64!", "1000.%41"] {
            assert_eq!(s.verify("/", Some(bad), 0), Err(Rejection::Malformed), "{bad:?}");
        }
        let short_tag = format!("1000.{}", &t[5..21]);
        assert_eq!(s.verify("/", Some(&short_tag), 0), Err(Rejection::Forged));
    }

    #[test]
    fn secrets_ignore_a_trailing_newline_and_must_be_long_enough() {
        assert!(TokenSecret::from_bytes(b"short\n").is_none());
        let a = TokenSecret::from_bytes(b"0123456789abcdef0123").unwrap();
        assert_eq!(a.mint("/", 5), secret().mint("/", 5));
        assert_eq!(format!("{a:?}"), "TokenSecret(20 bytes)");
        let err = TokenSecret::from_file(Path::new("/nonexistent/secret")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/secret"), "{err}");
    }

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(10_500);
        let t = secret().mint_for("/", Duration::from_millis(1_500), now);
        assert!(t.starts_with("12."), "{t}");
    }

    #[test]
    fn targets_carry_tokens_in_their_query() {
        assert_eq!(split_target(""), ("/", None));
        assert_eq!(split_target("/a?b=1"), ("/a", Some("b=1")));
        assert_eq!(token_in_query(Some("b=1&token=9.x&token=8.y")), Some("9.x"));
        assert_eq!(token_in_query(Some("tokens=1")), None);
        assert_eq!(token_in_query(None), None);
        assert_eq!(with_token("/", "9.x"), "/?token=9.x");
        assert_eq!(with_token("/a?b=1", "9.x"), "/a?b=1&token=9.x");
        assert_eq!(with_token("/a?", "9.x"), "/a?token=9.x");
        let (path, query) = split_target("/room/2?token=7.q");
        assert_eq!((path, token_in_query(query)), ("/room/2", Some("7.q")));
    }
}
