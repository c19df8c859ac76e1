//! Who may open a WebSocket: the origin allow-list, time-limited tokens and the per-peer
//! connection rate, checked once for both engines before the upgrade is answered.
//!
//! [`Gate::check`] takes what the request said (peer address, `Origin`, target) and the time,
//! and answers with a [`Denial`] naming the cause; `http` turns it into a status, `metrics`
//! counts it. The checks run cheapest first: the rate (so a flood of forged tokens costs a
//! lookup, not an HMAC each), then the origin, then the token. Only WebSocket upgrades pass
//! through here: `/healthz`, `/metrics` and `/client` are not gated.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use wsbench_core::token::{self, Rejection, TokenSecret};

/// How long a token embedded in a served `/client` page stays valid.
pub const PAGE_TOKEN_TTL: Duration = Duration::from_secs(60);

/// Peers whose buckets are remembered at most. Past it, buckets that have refilled (they
/// are no different from a peer never seen) are forgotten; a peer that finds the table still
/// full is let through unremembered. About 64 bytes each: 4 MiB at most.
const MAX_PEERS: usize = 65_536;

/// Why an upgrade was refused. Each cause has its own counter and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// 403: an `Origin` not among `--allow-origin`.
    Origin,
    /// 401: no `token` parameter.
    TokenMissing,
    /// 403: a token that is malformed or not signed with our secret for this path and expiry.
    TokenForged,
    /// 401: a genuine token past its expiry (Unix seconds).
    TokenExpired { expiry: u64 },
    /// 429: the peer's bucket is empty; a connection is allowed again in about this many seconds.
    Rate { retry_after_s: u64 },
}

/// The gate's settings as `server.json` records them (`config.gate`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GateConfig {
    /// Origins allowed to upgrade; empty: any. An upgrade without `Origin` always passes.
    pub allow_origins: Vec<String>,
    /// The HMAC secret's file (never its contents); absent: no token is asked for.
    pub token_secret: Option<PathBuf>,
    /// Seconds a `/client` page's embedded token lasts (with `token_secret`).
    pub page_token_ttl_s: Option<u64>,
    /// WebSocket upgrades per second allowed per peer IP address; absent: no limit.
    pub conn_rate_per_s: Option<f64>,
    /// Upgrades a peer may make at once; each peer's bucket starts full, at this.
    pub conn_burst: Option<u32>,
    /// Whether `GET /client` serves the browser page.
    pub client_page: bool,
}

/// The checks in force.
#[derive(Debug)]
pub struct Gate {
    config: GateConfig,
    origins: Vec<String>,
    secret: Option<TokenSecret>,
    rate: Option<PeerRate>,
}

impl Default for Gate {
    /// No checks, and the browser page served.
    fn default() -> Self {
        Self::new(GateConfig { client_page: true, ..GateConfig::default() }, None)
    }
}

impl Gate {
    /// The gate `config` describes, with the secret read from `config.token_secret` already.
    pub fn new(mut config: GateConfig, secret: Option<TokenSecret>) -> Self {
        let origins = config.allow_origins.iter().map(|o| normalize_origin(o)).collect();
        let rate = config
            .conn_rate_per_s
            .map(|r| PeerRate::new(r, config.conn_burst.unwrap_or(1)));
        config.page_token_ttl_s = secret.as_ref().map(|_| PAGE_TOKEN_TTL.as_secs());
        Self { config, origins, secret, rate }
    }

    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    /// Whether `/client` is served.
    pub fn client_page(&self) -> bool {
        self.config.client_page
    }

    /// The checks for one upgrade from `peer` with `origin` to `target` (path and query), at
    /// `now` (Unix seconds `now_unix`). A refused upgrade still spends its place in the bucket.
    pub fn check(
        &self,
        peer: IpAddr,
        origin: Option<&str>,
        target: &str,
        now: Instant,
        now_unix: u64,
    ) -> Result<(), Denial> {
        if let Some(rate) = &self.rate {
            rate.admit(peer, now)
                .map_err(|wait| Denial::Rate { retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64 })?;
        }
        if let Some(origin) = origin {
            if !self.origins.is_empty() && !self.origins.contains(&normalize_origin(origin)) {
                return Err(Denial::Origin);
            }
        }
        if let Some(secret) = &self.secret {
            let (path, query) = token::split_target(target);
            secret
                .verify(path, token::token_in_query(query), now_unix)
                .map_err(|r| match r {
                    Rejection::Missing => Denial::TokenMissing,
                    Rejection::Malformed | Rejection::Forged => Denial::TokenForged,
                    Rejection::Expired { expiry } => Denial::TokenExpired { expiry },
                })?;
        }
        Ok(())
    }

    /// A token for the `/client` page to connect to `path` with, when tokens are asked for.
    pub fn page_token(&self, path: &str, now: std::time::SystemTime) -> Option<String> {
        self.secret.as_ref().map(|s| s.mint_for(path, PAGE_TOKEN_TTL, now))
    }
}

/// Origins compare as RFC 6454 serializations do: scheme and host are case-insensitive, and a
/// trailing `/` some tools add is not part of it.
fn normalize_origin(o: &str) -> String {
    o.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Checks an `--allow-origin` value: `scheme://host[:port]`, nothing after.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?} is not an origin: give scheme://host[:port], e.g. https://a.example"))?;
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        return Err(format!("{s:?} is not an origin: give scheme://host[:port] with no path, e.g. https://a.example"));
    }
    Ok(s.to_owned())
}

pub use wsbench_core::units::parse_rate;

/// One token bucket per peer IP address, each starting full at `burst` and refilling at `rate`
/// per second up to `burst`. Locked once per upgrade, never per message.
#[derive(Debug)]
struct PeerRate {
    rate: f64,
    burst: f64,
    peers: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }
}

impl PeerRate {
    fn new(rate: f64, burst: u32) -> Self {
        Self { rate, burst: f64::from(burst.max(1)), peers: Mutex::new(HashMap::new()) }
    }

    /// Takes one token from `peer`'s bucket, or says how long until one is there.
    fn admit(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        let (rate, burst) = (self.rate, self.burst);
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
            peers.retain(|_, b| {
                b.refill(now, rate, burst);
                b.tokens < burst
            });
            if peers.len() >= MAX_PEERS {
                return Ok(());
            }
        }
        let bucket = peers.entry(peer).or_insert(Bucket { tokens: burst, at: now });
        bucket.refill(now, rate, burst);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a test secret of 24 byte";

    fn gate(config: GateConfig) -> Gate {
        let secret = config.token_secret.as_ref().map(|_| TokenSecret::from_bytes(SECRET).unwrap());
        Gate::new(config, secret)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn buckets_start_full_at_the_burst_and_refill_at_the_rate() {
        let g = gate(GateConfig { conn_rate_per_s: Some(10.0), conn_burst: Some(3), ..GateConfig::default() });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(g.check(ip(1), None, "/", t0, 0), Ok(()));
        }
        assert_eq!(g.check(ip(1), None, "/", t0, 0), Err(Denial::Rate { retry_after_s: 1 }));
        // Another peer has its own full bucket.
        assert_eq!(g.check(ip(2), None, "/", t0, 0), Ok(()));
        // 100 ms at 10/s is one more; 250 ms more is two, not more than the burst allows.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(g.check(ip(1), None, "/", t1, 0), Ok(()));
        assert!(g.check(ip(1), None, "/", t1, 0).is_err());
        let t2 = t1 + Duration::from_millis(250);
        assert_eq!(g.check(ip(1), None, "/", t2, 0), Ok(()));
        assert_eq!(g.check(ip(1), None, "/", t2, 0), Ok(()));
        assert!(g.check(ip(1), None, "/", t2, 0).is_err());
        // Long idle refills to the burst, never beyond.
        let t3 = t2 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(g.check(ip(1), None, "/", t3, 0), Ok(()));
        }
        assert!(g.check(ip(1), None, "/", t3, 0).is_err());
    }

    #[test]
    fn the_remembered_peers_are_bounded() {
        let r = PeerRate::new(1.0, 1);
        let t0 = Instant::now();
        for i in 0..MAX_PEERS as u32 {
            assert_eq!(r.admit(IpAddr::from(i.to_be_bytes()), t0), Ok(()));
        }
        // All empty: the table is full, a newcomer passes unremembered.
        assert_eq!(r.admit(ip(250), t0), Ok(()));
        assert_eq!(r.peers.lock().unwrap().len(), MAX_PEERS);
        // Once they have refilled they are forgotten.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(r.admit(ip(250), later), Ok(()));
        assert_eq!(r.peers.lock().unwrap().len(), 1);
    }

    #[test]
    fn origins_are_checked_when_listed_and_absent_ones_pass() {
        let open = gate(GateConfig::default());
        let now = Instant::now();
        assert_eq!(open.check(ip(1), Some("https://evil.example"), "/", now, 0), Ok(()));
        let g = gate(GateConfig { allow_origins: vec!["https://A.example/".into()], ..GateConfig::default() });
        assert_eq!(g.check(ip(1), Some("https://a.example"), "/", now, 0), Ok(()));
        assert_eq!(g.check(ip(1), Some("https://evil.example"), "/", now, 0), Err(Denial::Origin));
        assert_eq!(g.check(ip(1), Some("http://a.example"), "/", now, 0), Err(Denial::Origin));
        assert_eq!(g.check(ip(1), Some("null"), "/", now, 0), Err(Denial::Origin));
        assert_eq!(g.check(ip(1), None, "/", now, 0), Ok(()));
    }

    #[test]
    fn tokens_are_checked_for_the_path_they_name() {
        let g = gate(GateConfig { token_secret: Some("s".into()), ..GateConfig::default() });
        let s = TokenSecret::from_bytes(SECRET).unwrap();
        let now = Instant::now();
        let t = s.mint("/room/1", 100);
        let ok = format!("/room/1?x=1&token={t}");
        assert_eq!(g.check(ip(1), None, &ok, now, 100), Ok(()));
        assert_eq!(g.check(ip(1), None, &ok, now, 101), Err(Denial::TokenExpired { expiry: 100 }));
        assert_eq!(g.check(ip(1), None, &format!("/?token={t}"), now, 0), Err(Denial::TokenForged));
        assert_eq!(g.check(ip(1), None, "/room/1?token=oops", now, 0), Err(Denial::TokenForged));
        assert_eq!(g.check(ip(1), None, "/room/1", now, 0), Err(Denial::TokenMissing));
        let page = g.page_token("/", std::time::SystemTime::now()).unwrap();
        assert_eq!(g.check(ip(1), None, &format!("/?token={page}"), now, token::unix_seconds(std::time::SystemTime::now())), Ok(()));
        assert_eq!(g.config().page_token_ttl_s, Some(60));
    }

    #[test]
    fn flag_values_are_checked() {
        assert_eq!(parse_rate("100/s"), Ok(100.0));
        assert_eq!(parse_rate("120/min"), Ok(2.0));
        assert_eq!(parse_rate("5"), Ok(5.0));
        for bad in ["0/s", "-1", "x/s", "10/h", "inf"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert!(parse_origin("https://a.example:8443").is_ok());
        assert!(parse_origin("http://127.0.0.1:9001/").is_ok());
        for bad in ["a.example", "https://", "https://a.example/path", "ftp://a"] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
