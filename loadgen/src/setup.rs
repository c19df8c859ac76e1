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
use wsbench_core::result::{ConnectionSetup, DeflateReport, TlsReport};

use crate::client::ConnectTimes;

/// How a `wss://` run trusted the server (`None` for `ws://`), as every workload records it.
pub fn tls_report(plan: &wsbench_core::plan::LoadPlan, secure: bool) -> Option<TlsReport> {
    secure.then(|| TlsReport {
        trust: if plan.insecure { "insecure" } else if plan.ca.is_some() { "ca" } else { "system" }.to_owned(),
        insecure: plan.insecure,
    })
}

/// One process's (or worker's) connection setup times, in nanoseconds.
#[derive(Debug, Clone)]
pub struct SetupTimes {
    pub connect: Histogram<u64>,
    pub tls: Histogram<u64>,
    pub handshake: Histogram<u64>,
    pub first_message: Histogram<u64>,
    /// Connections by the server's chosen subprotocol (`""`: none).
    pub subprotocols: BTreeMap<String, u32>,
    /// Connections by the permessage-deflate parameters agreed (`"declined"`: none).
    pub deflate: BTreeMap<String, u32>,
    pub compression: CompressionCounts,
}

/// permessage-deflate's bytes on the wire against payload bytes, both ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompressionCounts {
    pub messages_out: u64,
    pub payload_out: u64,
    pub wire_out: u64,
    pub messages_in: u64,
    pub wire_in: u64,
    pub payload_in: u64,
}

impl CompressionCounts {
    pub fn add(&mut self, o: &CompressionCounts) {
        self.messages_out += o.messages_out;
        self.payload_out += o.payload_out;
        self.wire_out += o.wire_out;
        self.messages_in += o.messages_in;
        self.wire_in += o.wire_in;
        self.payload_in += o.payload_in;
    }
}

impl Default for SetupTimes {
    fn default() -> Self {
        Self { connect: new_histogram(), tls: new_histogram(), handshake: new_histogram(), first_message: new_histogram(), subprotocols: BTreeMap::new(), deflate: BTreeMap::new(), compression: CompressionCounts::default() }
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
        let agreed = t.deflate.map_or_else(|| "declined".to_owned(), |a| a.describe());
        *self.deflate.entry(agreed).or_default() += 1;
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
        for (p, n) in &other.deflate {
            *self.deflate.entry(p.clone()).or_default() += n;
        }
        self.compression.add(&other.compression);
    }

    /// The summary's block; `offered` says whether subprotocols were offered at all,
    /// `deflate` whether permessage-deflate was.
    pub fn summary(&self, tls: Option<TlsReport>, offered: bool, deflate: bool) -> ConnectionSetup {
        let c = &self.compression;
        let ratio = |wire: u64, payload: u64| (payload > 0).then(|| wire as f64 / payload as f64);
        let some = |h: &Histogram<u64>| (!h.is_empty()).then(|| LatencySummary::from_histogram_ns(h));
        ConnectionSetup {
            tls,
            connect_us: some(&self.connect),
            tls_us: some(&self.tls),
            handshake_us: some(&self.handshake),
            first_message_us: some(&self.first_message),
            subprotocols: if offered { self.subprotocols.clone() } else { BTreeMap::new() },
            deflate: deflate.then(|| DeflateReport {
                agreements: self.deflate.clone(),
                messages_out: c.messages_out,
                payload_bytes_out: c.payload_out,
                wire_bytes_out: c.wire_out,
                ratio_out: ratio(c.wire_out, c.payload_out),
                messages_in: c.messages_in,
                wire_bytes_in: c.wire_in,
                payload_bytes_in: c.payload_in,
                ratio_in: ratio(c.wire_in, c.payload_in),
            }),
        }
    }

    /// Writes one interval log per timing into `dir`, each a single interval from `start` (the
    /// connect phase's start) lasting `span`; the TLS log only when there was TLS.
    pub fn write_logs(&self, dir: &Path, start: SystemTime, span: Duration) -> Result<(), String> {
        let logs = [
            (CONNECT_LOG, &self.connect, "TCP connect per connection"),
            (TLS_LOG, &self.tls, "TLS handshake per connection"),
            (HANDSHAKE_LOG, &self.handshake, "WebSocket handshake per connection (request written to 101 parsed)"),
            (FIRST_MESSAGE_LOG, &self.first_message, "first message per connection (echo: its round trip; fan-out: its delivery)"),
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
        a.record(&ConnectTimes { connect_ns: 50_000, tls_ns: None, handshake_ns: 80_000, subprotocol: None, deflate: None });
        let mut b = SetupTimes::default();
        b.record(&ConnectTimes { connect_ns: 70_000, tls_ns: Some(900_000), handshake_ns: 90_000, subprotocol: Some("chat".into()), deflate: None });
        a.add(&b);
        let s = a.summary(None, true, false);
        assert_eq!(s.connect_us.unwrap().count, 2);
        assert_eq!(s.tls_us.unwrap().count, 1);
        assert!((s.handshake_us.unwrap().max - 90.0).abs() < 0.1);
        assert!(s.first_message_us.is_none(), "nothing recorded, nothing claimed");
        assert_eq!(s.subprotocols, BTreeMap::from([(String::new(), 1), ("chat".into(), 1)]));
        assert!(a.summary(None, false, false).subprotocols.is_empty());
    }
}
