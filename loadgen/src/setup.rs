//! How connections were opened: per-connection setup times (TCP connect, TLS handshake,
//! WebSocket handshake, first message's round trip), each in its own histogram, plus the
//! subprotocols the server chose. A worker records its own connections; the process adds the
//! workers' up once, at the end, and writes one interval log per timing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use wsbench_core::hist::{new_histogram, record_ns, write_interval_log, LatencySummary, LogInterval};
use wsbench_core::layout::{CONNECT_LOG, FIRST_MESSAGE_LOG, HANDSHAKE_LOG, TLS_LOG};
use wsbench_core::result::{ConnectionSetup, TlsReport};

use crate::client::ConnectTimes;

/// One process's (or worker's) connection setup times, in nanoseconds.
#[derive(Debug, Clone)]
pub struct SetupTimes {
    pub connect: Histogram<u64>,
    pub tls: Histogram<u64>,
    pub handshake: Histogram<u64>,
    pub first_message: Histogram<u64>,
    /// Connections by the server's chosen subprotocol (`""`: none).
    pub subprotocols: BTreeMap<String, u32>,
}

impl Default for SetupTimes {
    fn default() -> Self {
        Self { connect: new_histogram(), tls: new_histogram(), handshake: new_histogram(), first_message: new_histogram(), subprotocols: BTreeMap::new() }
    }
}

impl SetupTimes {
    /// Records one opened connection.
    pub fn record(&mut self, t: &ConnectTimes) {
        record_ns(&mut self.connect, t.connect_ns);
        if let Some(ns) = t.tls_ns {
            record_ns(&mut self.tls, ns);
        }
        record_ns(&mut self.handshake, t.handshake_ns);
        *self.subprotocols.entry(t.subprotocol.clone().unwrap_or_default()).or_default() += 1;
    }

    /// Adds another worker's times.
    pub fn add(&mut self, other: &SetupTimes) {
        for (a, b) in [(&mut self.connect, &other.connect), (&mut self.tls, &other.tls), (&mut self.handshake, &other.handshake), (&mut self.first_message, &other.first_message)] {
            // Same bounds on both sides: adding cannot fail.
            let _ = a.add(b);
        }
        for (p, n) in &other.subprotocols {
            *self.subprotocols.entry(p.clone()).or_default() += n;
        }
    }

    /// The summary's block; `offered` says whether subprotocols were offered at all.
    pub fn summary(&self, tls: Option<TlsReport>, offered: bool) -> ConnectionSetup {
        let some = |h: &Histogram<u64>| (!h.is_empty()).then(|| LatencySummary::from_histogram_ns(h));
        ConnectionSetup {
            tls,
            connect_us: some(&self.connect),
            tls_us: some(&self.tls),
            handshake_us: some(&self.handshake),
            first_message_us: some(&self.first_message),
            subprotocols: if offered { self.subprotocols.clone() } else { BTreeMap::new() },
        }
    }

    /// Writes one interval log per timing into `dir`, each a single interval from `start` (the
    /// connect phase's start) lasting `span`; the TLS log only when there was TLS.
    pub fn write_logs(&self, dir: &Path, start: SystemTime, span: Duration) -> Result<(), String> {
        let logs = [
            (CONNECT_LOG, &self.connect, "TCP connect per connection"),
            (TLS_LOG, &self.tls, "TLS handshake per connection"),
            (HANDSHAKE_LOG, &self.handshake, "WebSocket handshake per connection (request written to 101 parsed)"),
            (FIRST_MESSAGE_LOG, &self.first_message, "first message round trip per connection"),
        ];
        for (name, h, comment) in logs {
            if name == TLS_LOG && h.is_empty() {
                continue;
            }
            let interval = LogInterval { start: Duration::ZERO, duration: span, tag: None, histogram: h.clone() };
            write_interval_log(&dir.join(name), start, &format!("wsbench loadgen: {comment}"), &[interval]).map_err(|e| format!("cannot write {name}: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_add_up_and_tls_is_left_out_when_absent() {
        let mut a = SetupTimes::default();
        a.record(&ConnectTimes { connect_ns: 50_000, tls_ns: None, handshake_ns: 80_000, subprotocol: None });
        let mut b = SetupTimes::default();
        b.record(&ConnectTimes { connect_ns: 70_000, tls_ns: Some(900_000), handshake_ns: 90_000, subprotocol: Some("chat".into()) });
        a.add(&b);
        let s = a.summary(None, true);
        assert_eq!(s.connect_us.unwrap().count, 2);
        assert_eq!(s.tls_us.unwrap().count, 1);
        assert!((s.handshake_us.unwrap().max - 90.0).abs() < 0.1);
        assert!(s.first_message_us.is_none(), "nothing recorded, nothing claimed");
        assert_eq!(s.subprotocols, BTreeMap::from([(String::new(), 1), ("chat".into(), 1)]));
        assert!(a.summary(None, false).subprotocols.is_empty());
    }
}
