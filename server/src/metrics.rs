//! The server's counters: what `/metrics` shows and `server.json` records.
//!
//! Plain relaxed atomics: every counter is read on its own, nothing needs them to agree with
//! each other at one instant. Connection tasks add their message and byte counts in batches
//! ([`ConnectionCounts`]) so that worker threads do not bounce these cache lines per message.
//! This module renders nothing; `routes` turns a [`Snapshot`] into Prometheus text.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use wsbench_core::codec::deflate::Agreement;
use wsbench_core::result::ServerCounts;

use crate::gate::Denial;
use crate::limits::LimitHit;

/// Counters shared by every task of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    connections_open: AtomicU64,
    connections_peak: AtomicU64,
    connections_accepted: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    protocol_errors: AtomicU64,
    pauses: AtomicU64,
    sockets_open: AtomicU64,
    sockets_closed: AtomicU64,
    refused_busy: AtomicU64,
    handshake_timeouts: AtomicU64,
    tls_failures: AtomicU64,
    over_budget: AtomicU64,
    read_timeouts: AtomicU64,
    pong_timeouts: AtomicU64,
    slow_consumers: AtomicU64,
    close_timeouts: AtomicU64,
    /// Idle connections parked (see `park`), counted each time.
    parks: AtomicU64,
    /// Large-message buffers given back by connections that went quiet without being parked.
    buffers_released: AtomicU64,
    refused_origin: AtomicU64,
    refused_token_missing: AtomicU64,
    refused_token_forged: AtomicU64,
    refused_token_expired: AtomicU64,
    refused_rate: AtomicU64,
    deflate_offered: AtomicU64,
    deflate_negotiated: AtomicU64,
    deflate_messages_in: AtomicU64,
    deflate_wire_in: AtomicU64,
    deflate_payload_in: AtomicU64,
    deflate_messages_out: AtomicU64,
    deflate_payload_out: AtomicU64,
    deflate_wire_out: AtomicU64,
    deflate_ns: AtomicU64,
    /// Each distinct set of negotiated parameters and how many connections it served (a
    /// handful at most; taken once per handshake, never per message).
    deflate_agreements: Mutex<Vec<(Agreement, u64)>>,
}

/// What permessage-deflate did: negotiations, and bytes on the wire against payload bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeflateCounts {
    /// Upgrades that offered any extension while `--deflate` was on.
    pub offered: u64,
    /// Upgrades answered with permessage-deflate.
    pub negotiated: u64,
    /// Compressed messages received: their payload on the wire and inflated.
    pub messages_in: u64,
    pub wire_in: u64,
    pub payload_in: u64,
    /// Messages compressed and sent: their payload before and after compression.
    pub messages_out: u64,
    pub payload_out: u64,
    pub wire_out: u64,
    /// Time spent inflating and compressing, in nanoseconds (wall clock on the worker).
    pub ns: u64,
}

impl DeflateCounts {
    /// True when enough has accumulated that it should be published now.
    #[inline]
    pub fn is_due(&self) -> bool {
        self.messages_in + self.messages_out >= 256
    }
}

/// One reading of every counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub connections_open: u64,
    pub connections_peak: u64,
    pub connections_accepted: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub protocol_errors: u64,
    pub pauses: u64,
    /// Accepted sockets being served now, pending handshakes included.
    pub sockets_open: u64,
    /// Bytes of partial messages held now (the `--max-buffered` budget in use).
    pub buffered_bytes: u64,
    /// Sockets parked now, without a task: pending handshakes and quiet connections.
    pub parked: u64,
    /// Sockets answered 503 because `--max-connections` were open.
    pub refused_busy: u64,
    /// Sockets that sent no complete request head within the handshake timeout.
    pub handshake_timeouts: u64,
    /// Sockets whose TLS handshake failed (a client that does not trust our certificate, say).
    pub tls_failures: u64,
    /// Connections closed (1008) because the partial-message budget was spent.
    pub over_budget: u64,
    /// Connections closed (1008) for half a message and then silence.
    pub read_timeouts: u64,
    /// Connections dropped (1011) for not answering a ping.
    pub pong_timeouts: u64,
    /// Connections closed (1008) for leaving more than `--max-write-buffer` unread.
    pub slow_consumers: u64,
    /// Closing handshakes the peer did not finish within the close timeout.
    pub close_timeouts: u64,
    /// Upgrades refused (403) for an `Origin` not allowed.
    pub refused_origin: u64,
    /// Upgrades refused (401) without a token.
    pub refused_token_missing: u64,
    /// Upgrades refused (403) for a malformed or forged token.
    pub refused_token_forged: u64,
    /// Upgrades refused (401) for an expired token.
    pub refused_token_expired: u64,
    /// Upgrades refused (429) over the per-peer connection rate.
    pub refused_rate: u64,
    pub deflate: DeflateCounts,
}

impl Snapshot {
    /// The counts block of `server.json`.
    pub fn counts(&self) -> ServerCounts {
        ServerCounts {
            connections_accepted: self.connections_accepted,
            connections_peak: self.connections_peak,
            messages_in: self.messages_in,
            messages_out: self.messages_out,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            protocol_errors: self.protocol_errors,
        }
    }
}

impl Metrics {
    /// Counts a WebSocket connection as accepted and open until the returned guard drops, so a
    /// task that ends any way at all (including abort or panic) still closes its count.
    pub(crate) fn open_connection(&self) -> OpenConnection<'_> {
        self.connections_accepted.fetch_add(1, Relaxed);
        let open = self.connections_open.fetch_add(1, Relaxed) + 1;
        self.connections_peak.fetch_max(open, Relaxed);
        OpenConnection { metrics: self }
    }

    pub(crate) fn protocol_error(&self) {
        self.protocol_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn pause(&self) {
        self.pauses.fetch_add(1, Relaxed);
    }

    /// Counts an accepted socket as served until the guard drops. `None` when `max` are served
    /// already: the caller answers 503 and counts it with [`Metrics::refused_busy`].
    pub(crate) fn open_socket(&self, max: usize) -> Option<OpenSocket<'_>> {
        let max = max as u64;
        self.sockets_open
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| OpenSocket { metrics: self })
    }

    pub(crate) fn refused_busy(&self) {
        self.refused_busy.fetch_add(1, Relaxed);
    }

    pub(crate) fn handshake_timeout(&self) {
        self.handshake_timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn tls_failure(&self) {
        self.tls_failures.fetch_add(1, Relaxed);
    }

    /// Counts an upgrade the gate refused, by cause.
    pub(crate) fn denied(&self, denial: Denial) {
        let counter = match denial {
            Denial::Origin => &self.refused_origin,
            Denial::TokenMissing => &self.refused_token_missing,
            Denial::TokenForged => &self.refused_token_forged,
            Denial::TokenExpired { .. } => &self.refused_token_expired,
            Denial::Rate { .. } => &self.refused_rate,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Counts one upgrade's permessage-deflate negotiation (with `--deflate` on).
    pub(crate) fn deflate_negotiation(&self, offered: bool, agreed: Option<&Agreement>) {
        if offered {
            self.deflate_offered.fetch_add(1, Relaxed);
        }
        let Some(agreed) = agreed else { return };
        self.deflate_negotiated.fetch_add(1, Relaxed);
        let mut list = self.deflate_agreements.lock().unwrap_or_else(|e| e.into_inner());
        match list.iter_mut().find(|(a, _)| a == agreed) {
            Some((_, n)) => *n += 1,
            None => list.push((*agreed, 1)),
        }
    }

    /// The distinct negotiated parameter sets and their connection counts.
    pub fn deflate_agreements(&self) -> Vec<(Agreement, u64)> {
        self.deflate_agreements.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds a connection's pending compression counts and zeroes them.
    pub(crate) fn add_deflate(&self, c: &mut DeflateCounts) {
        for (counter, n) in [
            (&self.deflate_messages_in, c.messages_in),
            (&self.deflate_wire_in, c.wire_in),
            (&self.deflate_payload_in, c.payload_in),
            (&self.deflate_messages_out, c.messages_out),
            (&self.deflate_payload_out, c.payload_out),
            (&self.deflate_wire_out, c.wire_out),
            (&self.deflate_ns, c.ns),
        ] {
            if n != 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
        *c = DeflateCounts::default();
    }

    pub(crate) fn close_timeout(&self) {
        self.close_timeouts.fetch_add(1, Relaxed);
    }

    /// Sockets that ended since the server started: the memory trimmer's cue.
    pub(crate) fn sockets_closed(&self) -> u64 {
        self.sockets_closed.load(Relaxed)
    }

    pub(crate) fn limit_hit(&self, hit: LimitHit) {
        let counter = match hit {
            LimitHit::OverBudget => &self.over_budget,
            LimitHit::ReadTimeout => &self.read_timeouts,
            LimitHit::PongTimeout => &self.pong_timeouts,
            LimitHit::SlowConsumer => &self.slow_consumers,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            connections_open: self.connections_open.load(Relaxed),
            connections_peak: self.connections_peak.load(Relaxed),
            connections_accepted: self.connections_accepted.load(Relaxed),
            messages_in: self.messages_in.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
            pauses: self.pauses.load(Relaxed),
            sockets_open: self.sockets_open.load(Relaxed),
            buffered_bytes: 0,
            parked: 0,
            refused_busy: self.refused_busy.load(Relaxed),
            handshake_timeouts: self.handshake_timeouts.load(Relaxed),
            tls_failures: self.tls_failures.load(Relaxed),
            over_budget: self.over_budget.load(Relaxed),
            read_timeouts: self.read_timeouts.load(Relaxed),
            pong_timeouts: self.pong_timeouts.load(Relaxed),
            slow_consumers: self.slow_consumers.load(Relaxed),
            close_timeouts: self.close_timeouts.load(Relaxed),
            refused_origin: self.refused_origin.load(Relaxed),
            refused_token_missing: self.refused_token_missing.load(Relaxed),
            refused_token_forged: self.refused_token_forged.load(Relaxed),
            refused_token_expired: self.refused_token_expired.load(Relaxed),
            refused_rate: self.refused_rate.load(Relaxed),
            deflate: DeflateCounts {
                offered: self.deflate_offered.load(Relaxed),
                negotiated: self.deflate_negotiated.load(Relaxed),
                messages_in: self.deflate_messages_in.load(Relaxed),
                wire_in: self.deflate_wire_in.load(Relaxed),
                payload_in: self.deflate_payload_in.load(Relaxed),
                messages_out: self.deflate_messages_out.load(Relaxed),
                payload_out: self.deflate_payload_out.load(Relaxed),
                wire_out: self.deflate_wire_out.load(Relaxed),
                ns: self.deflate_ns.load(Relaxed),
            },
        }
    }
}

/// An open WebSocket connection's place in the `connections_open` gauge.
#[derive(Debug)]
pub(crate) struct OpenConnection<'a> {
    metrics: &'a Metrics,
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.metrics.connections_open.fetch_sub(1, Relaxed);
    }
}

impl OpenConnection<'_> {
    /// Keeps the connection counted while it is parked, without a borrow of the metrics.
    pub fn park(self) -> ParkedConnection {
        self.metrics.parks.fetch_add(1, Relaxed);
        std::mem::forget(self);
        ParkedConnection(())
    }
}

/// A parked connection's place in the `connections_open` gauge: given back to
/// [`Metrics::resume_connection`], which turns it into a guard again.
#[derive(Debug)]
#[must_use = "the gauge goes down only through Metrics::resume_connection"]
pub struct ParkedConnection(());

/// A parked socket's place in the `sockets_open` gauge; see [`Metrics::resume_socket`].
#[derive(Debug)]
#[must_use = "the gauge goes down only through Metrics::resume_socket"]
pub struct ParkedSocket(());

#[cfg(test)]
impl ParkedSocket {
    pub fn for_test() -> Self {
        Self(())
    }
}

impl Metrics {
    /// The guard of a connection that leaves the lot (no new count: it was open all along).
    pub(crate) fn resume_connection(&self, _: ParkedConnection) -> OpenConnection<'_> {
        OpenConnection { metrics: self }
    }

    /// The guard of a socket that leaves the lot.
    pub(crate) fn resume_socket(&self, _: ParkedSocket) -> OpenSocket<'_> {
        OpenSocket { metrics: self }
    }

    /// Sockets parked since the server started: a cue for the memory trimmer, as the tasks
    /// and buffers they left are freed.
    pub(crate) fn parks(&self) -> u64 {
        self.parks.load(Relaxed)
    }

    /// A connection that is not parked gave back the large buffer it kept.
    pub(crate) fn buffer_released(&self) {
        self.buffers_released.fetch_add(1, Relaxed);
    }

    /// Kept buffers given back since the server started: a cue for the memory trimmer too.
    pub(crate) fn buffers_released(&self) -> u64 {
        self.buffers_released.load(Relaxed)
    }
}

impl OpenSocket<'_> {
    /// Keeps the socket counted while it is parked, without a borrow of the metrics.
    pub fn park(self) -> ParkedSocket {
        std::mem::forget(self);
        ParkedSocket(())
    }
}

/// An accepted socket's place in the `sockets_open` gauge (the `--max-connections` count).
#[derive(Debug)]
pub(crate) struct OpenSocket<'a> {
    metrics: &'a Metrics,
}

impl Drop for OpenSocket<'_> {
    fn drop(&mut self) {
        self.metrics.sockets_open.fetch_sub(1, Relaxed);
        self.metrics.sockets_closed.fetch_add(1, Relaxed);
    }
}

/// Message and byte counts of one connection, not yet added to the shared [`Metrics`].
/// Whatever is pending is published when it drops, so an aborted task loses no counts.
#[derive(Debug)]
pub(crate) struct ConnectionCounts<'a> {
    metrics: &'a Metrics,
    messages_in: u64,
    messages_out: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl<'a> ConnectionCounts<'a> {
    /// Messages after which a busy connection publishes even if it never goes idle, so
    /// `/metrics` keeps moving under a saturating load.
    const PUBLISH_EVERY: u64 = 256;

    pub fn new(metrics: &'a Metrics) -> Self {
        Self {
            metrics,
            messages_in: 0,
            messages_out: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    #[inline]
    pub fn received(&mut self, bytes: usize) {
        self.messages_in += 1;
        self.bytes_in += bytes as u64;
    }

    #[inline]
    pub fn sent(&mut self, bytes: usize) {
        self.messages_out += 1;
        self.bytes_out += bytes as u64;
    }

    /// True when enough has accumulated that it should be published now.
    #[inline]
    pub fn is_due(&self) -> bool {
        self.messages_in + self.messages_out >= Self::PUBLISH_EVERY
    }

    /// Adds the pending counts to the shared metrics and starts again from zero.
    pub fn publish(&mut self) {
        let m = self.metrics;
        if self.messages_in != 0 {
            m.messages_in.fetch_add(self.messages_in, Relaxed);
            m.bytes_in.fetch_add(self.bytes_in, Relaxed);
        }
        if self.messages_out != 0 {
            m.messages_out.fetch_add(self.messages_out, Relaxed);
            m.bytes_out.fetch_add(self.bytes_out, Relaxed);
        }
        self.messages_in = 0;
        self.messages_out = 0;
        self.bytes_in = 0;
        self.bytes_out = 0;
    }
}

impl Drop for ConnectionCounts<'_> {
    fn drop(&mut self) {
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_connections_track_guards_and_peak() {
        let m = Metrics::default();
        let a = m.open_connection();
        let b = m.open_connection();
        drop(a);
        let s = m.snapshot();
        assert_eq!(
            (
                s.connections_open,
                s.connections_peak,
                s.connections_accepted
            ),
            (1, 2, 2)
        );
        drop(b);
        assert_eq!(m.snapshot().connections_open, 0);
    }

    #[test]
    fn sockets_beyond_the_maximum_are_refused() {
        let m = Metrics::default();
        let a = m.open_socket(2).unwrap();
        let _b = m.open_socket(2).unwrap();
        assert!(m.open_socket(2).is_none());
        drop(a);
        assert!(m.open_socket(2).is_some());
        assert_eq!(m.sockets_closed(), 2);
        m.limit_hit(LimitHit::SlowConsumer);
        assert_eq!(m.snapshot().slow_consumers, 1);
        m.denied(Denial::TokenExpired { expiry: 1 });
        m.denied(Denial::Rate { retry_after_s: 1 });
        m.denied(Denial::Rate { retry_after_s: 2 });
        let s = m.snapshot();
        assert_eq!((s.refused_token_expired, s.refused_rate, s.refused_token_forged), (1, 2, 0));
    }

    #[test]
    fn connection_counts_publish_in_batches() {
        let m = Metrics::default();
        let mut c = ConnectionCounts::new(&m);
        c.received(10);
        c.sent(10);
        c.received(5);
        assert_eq!(m.snapshot().messages_in, 0);
        c.publish();
        let s = m.snapshot();
        assert_eq!(
            (s.messages_in, s.bytes_in, s.messages_out, s.bytes_out),
            (2, 15, 1, 10)
        );
        assert_eq!(s.counts().bytes_in, 15);
        c.received(1);
        drop(c);
        assert_eq!(
            m.snapshot().messages_in,
            3,
            "dropping publishes what is pending"
        );
    }
}
