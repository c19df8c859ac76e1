//! The echo workload written the way an ordinary application handler is (`--handler alloc`).
//!
//! Every message is decoded into owned values (the wsbench header into its fields, the rest into
//! a `String` or a `Vec<u8>`), serialized to JSON with serde_json, parsed back, and the reply is
//! encoded from the parsed values into a fresh buffer: the request → model → JSON → model → reply
//! round trip of a typical web-socket service. That costs a dozen or more heap allocations per
//! message (each owned field, the JSON text and its growth, each parsed field, the reply), which
//! is the point: `scenarios/allocation.toml` sets it against [`super::Echo`], which allocates
//! nothing. The reply is byte-identical to the message (the header encoding round-trips
//! exactly), so the load generator checks it as strictly as a plain echo.

use serde::{Deserialize, Serialize};
use wsbench_core::header::{MessageHeader, HEADER_LEN};

use super::{DataKind, Reply, Workload};

/// Echoes every data message through owned values and JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonEcho;

impl Workload for JsonEcho {
    fn on_message(&mut self, kind: DataKind, payload: &[u8]) -> Reply {
        let request = Envelope::decode(kind, payload);
        // Serializing plain strings, numbers and byte vectors cannot fail, and what serde_json
        // just wrote parses back; a failure here is a bug in this file, not bad input.
        let json = serde_json::to_vec(&request).expect("an envelope always serializes");
        let parsed: Envelope =
            serde_json::from_slice(&json).expect("serde_json parses what it wrote");
        parsed.encode()
    }
}

/// The application's model of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Envelope {
    /// The wsbench header's fields; absent for a message without one (a foreign client's).
    header: Option<Header>,
    body: Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    seq: u64,
    intended_ns: u64,
    sent_ns: u64,
    warmup: bool,
}

/// What follows the header (or the whole payload when there is no header), typed by frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Body {
    Text(String),
    Binary(Vec<u8>),
}

impl Envelope {
    fn decode(kind: DataKind, payload: &[u8]) -> Self {
        let header = MessageHeader::decode(payload).map(|h| Header {
            seq: h.seq,
            intended_ns: h.intended_ns,
            sent_ns: h.sent_ns,
            warmup: h.warmup,
        });
        let rest = if header.is_some() {
            &payload[HEADER_LEN..]
        } else {
            payload
        };
        let body = match kind {
            // Engines hand over text frames validated as UTF-8, and a header is all ASCII, so the
            // rest starts on a character boundary; the lossy conversion never replaces anything.
            DataKind::Text => Body::Text(String::from_utf8_lossy(rest).into_owned()),
            DataKind::Binary => Body::Binary(rest.to_vec()),
        };
        Self { header, body }
    }

    fn encode(self) -> Reply {
        let mut head = [0u8; HEADER_LEN];
        let head: &[u8] = match self.header {
            Some(h) => {
                MessageHeader {
                    seq: h.seq,
                    intended_ns: h.intended_ns,
                    sent_ns: h.sent_ns,
                    warmup: h.warmup,
                }
                .encode(&mut head);
                &head
            }
            None => &[],
        };
        match self.body {
            Body::Text(rest) => {
                let mut out = String::with_capacity(head.len() + rest.len());
                // Every header byte is below 0x80 (see wsbench_core::header).
                out.push_str(std::str::from_utf8(head).expect("a wsbench header is ASCII"));
                out.push_str(&rest);
                Reply::Text(out)
            }
            Body::Binary(rest) => {
                let mut out = Vec::with_capacity(head.len() + rest.len());
                out.extend_from_slice(head);
                out.extend_from_slice(&rest);
                Reply::Binary(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench_core::header::fill_payload;

    fn message(seq: u64, size: usize) -> Vec<u8> {
        let mut m = vec![0u8; size];
        MessageHeader {
            seq,
            intended_ns: u64::MAX - seq,
            sent_ns: 1 << 62,
            warmup: seq.is_multiple_of(2),
        }
        .encode(&mut m);
        fill_payload(&mut m, seq);
        m
    }

    #[test]
    fn replies_are_byte_identical_in_both_frame_types() {
        for (seq, size) in [(0, HEADER_LEN), (1, 33), (27, 1024), (u64::MAX, 64 << 10)] {
            let m = message(seq, size);
            assert_eq!(
                JsonEcho.on_message(DataKind::Binary, &m),
                Reply::Binary(m.clone())
            );
            let text = String::from_utf8(m.clone()).unwrap();
            assert_eq!(JsonEcho.on_message(DataKind::Text, &m), Reply::Text(text));
        }
    }

    #[test]
    fn foreign_messages_round_trip_too() {
        let all_bytes: Vec<u8> = (0..=255u8).collect();
        assert_eq!(
            JsonEcho.on_message(DataKind::Binary, &all_bytes),
            Reply::Binary(all_bytes.clone())
        );
        assert_eq!(
            JsonEcho.on_message(DataKind::Binary, &[]),
            Reply::Binary(Vec::new())
        );
        let text = "ünïcödé \"quoted\" \\ \u{0}\n 🦀";
        assert_eq!(
            JsonEcho.on_message(DataKind::Text, text.as_bytes()),
            Reply::Text(text.into())
        );
        // Starts like a header but is not one: echoed whole, not re-encoded.
        let mut almost = message(5, 40);
        almost[5] = 0xff;
        assert_eq!(
            JsonEcho.on_message(DataKind::Binary, &almost),
            Reply::Binary(almost.clone())
        );
    }

    #[test]
    fn the_model_travels_as_json() {
        let m = message(3, 40);
        let json = serde_json::to_string(&Envelope::decode(DataKind::Text, &m)).unwrap();
        let rest = std::str::from_utf8(&m[HEADER_LEN..]).unwrap();
        assert!(
            json.contains("\"seq\":3") && json.contains(&format!("{{\"text\":\"{rest}\"}}")),
            "{json}"
        );
    }
}
