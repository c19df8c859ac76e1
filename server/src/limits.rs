//! What one connection, and all of them together, may cost the server: the connection-state
//! core both engines share.
//!
//! [`Limits`] is every bound with its default (the flags of `--help`, the `limits` block of
//! `server.json`'s config). [`Budget`] is the server-wide allowance for partial-message memory
//! and [`Charge`] one connection's share of it. [`KeepAlive`] decides, from when input last
//! arrived and whether a message is half-received, when a connection is pinged, when it has
//! timed out and why. The engines only report facts (bytes held, input seen) and carry out what
//! these types decide, so each limit, its counter and its close code are written once.
//! Nothing here touches a socket.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// Policy violation (RFC 6455 section 7.4.1): the answer to a peer that exceeds a limit.
pub const POLICY_VIOLATION: u16 = 1008;
/// Internal error: a peer that stopped answering pings is told so, if it can still hear.
pub const INTERNAL_ERROR: u16 = 1011;

/// Every bound the server enforces. `Default` is what the flags default to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Server-wide bytes of partially received messages; the connection that would go past it
    /// is closed with 1008.
    pub max_buffered: usize,
    /// A connection with a message half-received and no input for this long is closed (1008).
    #[serde(serialize_with = "ser_duration")]
    pub read_timeout: Duration,
    /// A connection with no input for this long is pinged. Zero turns keep-alive off.
    #[serde(serialize_with = "ser_duration")]
    pub ping_interval: Duration,
    /// A pinged connection that sends nothing at all for this long is dropped (1011 if it can
    /// still take it).
    #[serde(serialize_with = "ser_duration")]
    pub pong_timeout: Duration,
    /// How long a closing connection waits for the peer's close frame.
    #[serde(serialize_with = "ser_duration")]
    pub close_timeout: Duration,
    /// How long a client may take to send its request head.
    #[serde(serialize_with = "ser_duration")]
    pub handshake_timeout: Duration,
    /// Unsent output a connection may queue beyond the one message being written; past it the
    /// client is a slow consumer and is closed with 1008.
    pub max_write_buffer: usize,
    /// Sockets served at once, pending handshakes included; beyond it a client gets HTTP 503.
    pub max_connections: usize,
    /// A zero-alloc connection quiet this long leaves its task for the server's epoll set
    /// (`park`); zero: never.
    #[serde(serialize_with = "ser_duration")]
    pub park_after: Duration,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&wsbench_core::units::format_duration(*d))
}

/// File descriptors kept back from `--max-connections`' default for the listener, the runtime,
/// output files and the 503 answers themselves.
const FD_RESERVE: u64 = 64;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_buffered: 256 << 20,
            read_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(20),
            close_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_write_buffer: 1 << 20,
            max_connections: default_max_connections(),
            park_after: crate::park::PARK_AFTER,
        }
    }
}

/// The soft `RLIMIT_NOFILE` less a reserve: every connection is a descriptor, and running out
/// of them fails `accept` for everyone, where a 503 tells the one client too many.
pub fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and pass by pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let soft = if rc == 0 { lim.rlim_cur } else { 1024 };
    usize::try_from(soft.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX)
}

/// The server-wide allowance for message memory: partial messages, and the large-message
/// buffers connections keep between messages (which are charged too, so that what is kept can
/// never take a server past its bound).
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    max: usize,
    /// Requests refused so far: connections that keep buffers give them back when this moves.
    refusals: AtomicUsize,
}

impl Budget {
    pub fn new(max: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            max,
            refusals: AtomicUsize::new(0),
        }
    }

    /// Bytes charged now, by every connection.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    /// Whether a connection may keep a buffer it no longer uses (already charged): only while
    /// at most half the budget is spent, so kept buffers never crowd out messages in progress.
    #[inline]
    pub fn may_keep(&self) -> bool {
        self.used() <= self.max / 2
    }

    /// How many requests the budget has refused: a change means memory is short, and kept
    /// buffers are to be given back.
    #[inline]
    pub fn refusals(&self) -> usize {
        self.refusals.load(Relaxed)
    }

    fn try_take(&self, n: usize) -> bool {
        let taken = self
            .used
            .fetch_update(Relaxed, Relaxed, |u| {
                u.checked_add(n).filter(|&total| total <= self.max)
            })
            .is_ok();
        if !taken {
            self.refusals.fetch_add(1, Relaxed);
        }
        taken
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Relaxed);
    }
}

/// The budget is spent: the connection that asked must close (1008).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget;

/// One connection's share of the [`Budget`]: the bytes it holds for partial messages. Given
/// back when it drops, however the connection ends.
#[derive(Debug)]
pub struct Charge<'a> {
    budget: &'a Budget,
    held: usize,
}

impl<'a> Charge<'a> {
    pub fn new(budget: &'a Budget) -> Self {
        Self { budget, held: 0 }
    }

    /// Sets this connection's share to `bytes`: growing it needs the budget's consent, shrinking
    /// always succeeds. On refusal the share stays as it was.
    #[inline]
    pub fn set(&mut self, bytes: usize) -> Result<(), OverBudget> {
        if bytes > self.held {
            if !self.budget.try_take(bytes - self.held) {
                return Err(OverBudget);
            }
        } else if bytes < self.held {
            self.budget.give_back(self.held - bytes);
        }
        self.held = bytes;
        Ok(())
    }

    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

/// Why a limit ends a connection: its close code and reason, and the counter it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// The server-wide partial-message budget is spent.
    OverBudget,
    /// Half a message, then silence for `--read-timeout`.
    ReadTimeout,
    /// Pinged, then silence for `--pong-timeout`.
    PongTimeout,
    /// More than `--max-write-buffer` unsent.
    SlowConsumer,
}

impl LimitHit {
    pub fn close_code(self) -> u16 {
        match self {
            Self::PongTimeout => INTERNAL_ERROR,
            Self::OverBudget | Self::ReadTimeout | Self::SlowConsumer => POLICY_VIOLATION,
        }
    }

    pub fn close_reason(self) -> &'static str {
        match self {
            Self::OverBudget => "server memory budget for partial messages spent",
            Self::ReadTimeout => "message not completed within the read timeout",
            Self::PongTimeout => "no answer to ping",
            Self::SlowConsumer => "too much output unread",
        }
    }

    /// Counts the hit in `metrics`.
    pub fn count(self, metrics: &Metrics) {
        metrics.limit_hit(self);
    }
}

/// What [`KeepAlive::on_timer`] asks of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing yet; sleep until [`KeepAlive::deadline`].
    Wait,
    /// Send a ping (empty payload), then sleep until the new deadline.
    Ping,
    /// End the connection.
    Close(LimitHit),
}

/// The timers of one connection, kept as two instants so that the engines read the clock once
/// per read and never reset a timer per message: the connection's one sleep fires at
/// [`deadline`](Self::deadline), which may be early (input came since), and then
/// [`on_timer`](Self::on_timer) says what is really due.
#[derive(Debug, Clone, Copy)]
pub struct KeepAlive {
    last_input: Instant,
    ping_sent: Option<Instant>,
}

impl KeepAlive {
    pub fn new(now: Instant) -> Self {
        Self {
            last_input: now,
            ping_sent: None,
        }
    }

    /// Input arrived at `now`. Any input answers a ping: a peer that talks is alive.
    #[inline]
    pub fn input(&mut self, now: Instant) {
        self.last_input = now;
        self.ping_sent = None;
    }

    /// When the connection's timer should next fire, after `now`. The read timeout is always
    /// allowed for, as if a message were half-received: a message can begin while the engine
    /// waits, and a timer that fires early costs only a look at
    /// [`on_timer`](Self::on_timer)'s answer.
    pub fn deadline(&self, limits: &Limits, now: Instant) -> Instant {
        let keep_alive = self.idle_deadline(limits);
        // Idle past the read timeout with nothing half-received: a message that begins from
        // now on is due a read timeout after now at the earliest.
        let read_due = self.last_input + limits.read_timeout;
        let read = if read_due > now {
            read_due
        } else {
            now + limits.read_timeout
        };
        // Never now or earlier: a timer that is always due would spin.
        keep_alive.min(read).max(now + MIN_WAIT)
    }

    /// When a parked connection (nothing half-received) must be woken: its next ping, or the
    /// end of its pong timeout.
    pub fn idle_deadline(&self, limits: &Limits) -> Instant {
        match self.ping_sent {
            Some(sent) => sent + limits.pong_timeout,
            None if limits.ping_interval.is_zero() => self.last_input + FAR,
            None => self.last_input + limits.ping_interval,
        }
    }

    /// When input last arrived.
    #[inline]
    pub fn last_input(&self) -> Instant {
        self.last_input
    }

    /// The timer fired at `now`: what is due. A ping decided here counts as sent at `now`.
    pub fn on_timer(&mut self, limits: &Limits, partial: bool, now: Instant) -> Due {
        if partial && now >= self.last_input + limits.read_timeout {
            return Due::Close(LimitHit::ReadTimeout);
        }
        match self.ping_sent {
            Some(sent) if now >= sent + limits.pong_timeout => Due::Close(LimitHit::PongTimeout),
            Some(_) => Due::Wait,
            None if limits.ping_interval.is_zero() => Due::Wait,
            None if now >= self.last_input + limits.ping_interval => {
                self.ping_sent = Some(now);
                Due::Ping
            }
            None => Due::Wait,
        }
    }
}

/// The least a connection's timer waits.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// "Never", for a timer with nothing to wait for: far enough to not matter, near enough that
/// adding it to an `Instant` cannot overflow.
const FAR: Duration = Duration::from_secs(86_400 * 365);

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            read_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(20),
            ..Limits::default()
        }
    }

    #[test]
    fn the_budget_refuses_growth_past_its_max_and_takes_back_on_drop() {
        let budget = Budget::new(1000);
        let mut a = Charge::new(&budget);
        let mut b = Charge::new(&budget);
        a.set(600).unwrap();
        assert_eq!(b.set(500), Err(OverBudget));
        assert_eq!(b.held(), 0);
        b.set(400).unwrap();
        assert_eq!(budget.used(), 1000);
        a.set(100).unwrap();
        assert_eq!(budget.used(), 500);
        drop(b);
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn buffers_are_kept_only_below_half_the_budget_and_refusals_are_counted() {
        let budget = Budget::new(1000);
        let mut a = Charge::new(&budget);
        a.set(500).unwrap();
        assert!(budget.may_keep());
        a.set(501).unwrap();
        assert!(!budget.may_keep());
        assert_eq!(budget.refusals(), 0);
        assert_eq!(a.set(1001), Err(OverBudget));
        assert_eq!(budget.refusals(), 1);
    }

    #[test]
    fn an_idle_connection_is_pinged_then_dropped_if_silent() {
        let l = limits();
        let t0 = Instant::now();
        let mut k = KeepAlive::new(t0);
        assert_eq!(k.deadline(&l, t0), t0 + l.ping_interval);
        assert_eq!(
            k.on_timer(&l, false, t0 + Duration::from_secs(5)),
            Due::Wait
        );
        let t1 = t0 + l.ping_interval;
        assert_eq!(k.on_timer(&l, false, t1), Due::Ping);
        assert_eq!(k.deadline(&l, t1), t1 + l.pong_timeout);
        assert_eq!(
            k.on_timer(&l, false, t1 + Duration::from_secs(1)),
            Due::Wait
        );
        assert_eq!(
            k.on_timer(&l, false, t1 + l.pong_timeout),
            Due::Close(LimitHit::PongTimeout)
        );
    }

    #[test]
    fn any_input_answers_a_ping() {
        let l = limits();
        let t0 = Instant::now();
        let mut k = KeepAlive::new(t0);
        let t1 = t0 + l.ping_interval;
        assert_eq!(k.on_timer(&l, false, t1), Due::Ping);
        k.input(t1 + Duration::from_secs(1));
        assert_eq!(k.on_timer(&l, false, t1 + l.pong_timeout), Due::Wait);
        let t2 = t1 + l.pong_timeout;
        assert_eq!(
            k.deadline(&l, t2),
            t1 + Duration::from_secs(1) + l.ping_interval
        );
    }

    #[test]
    fn half_a_message_then_silence_is_a_read_timeout() {
        let l = Limits {
            read_timeout: Duration::from_secs(1),
            ..limits()
        };
        let t0 = Instant::now();
        let mut k = KeepAlive::new(t0);
        assert_eq!(k.deadline(&l, t0), t0 + l.read_timeout);
        assert_eq!(
            k.on_timer(&l, true, t0 + l.read_timeout),
            Due::Close(LimitHit::ReadTimeout)
        );
        // Without a message in progress the same silence is only idleness, and the next look
        // is a read timeout later, never at once.
        let t1 = t0 + l.read_timeout;
        assert_eq!(k.on_timer(&l, false, t1), Due::Wait);
        assert_eq!(k.deadline(&l, t1), t1 + l.read_timeout);
    }

    #[test]
    fn keep_alive_can_be_turned_off() {
        let l = Limits {
            ping_interval: Duration::ZERO,
            ..limits()
        };
        let t0 = Instant::now();
        let mut k = KeepAlive::new(t0);
        assert_eq!(k.deadline(&l, t0), t0 + l.read_timeout);
        assert_eq!(
            k.on_timer(&l, false, t0 + Duration::from_secs(3600)),
            Due::Wait
        );
    }

    #[test]
    fn limit_hits_close_with_their_codes() {
        assert_eq!(LimitHit::OverBudget.close_code(), 1008);
        assert_eq!(LimitHit::ReadTimeout.close_code(), 1008);
        assert_eq!(LimitHit::SlowConsumer.close_code(), 1008);
        assert_eq!(LimitHit::PongTimeout.close_code(), 1011);
        assert!(default_max_connections() >= 1);
    }
}
