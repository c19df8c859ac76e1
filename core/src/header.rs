//! The header every load-generator message starts with, and the filler after it.
//!
//! Layout (32 bytes, every byte below 0x80 so a message is valid UTF-8 and can travel as a text
//! frame as well as a binary one):
//!
//! | bytes  | field                                                         |
//! |--------|---------------------------------------------------------------|
//! | 0      | magic `b'W'`                                                  |
//! | 1      | `b'0'` plus flags; bit 0 set = warm-up message (not recorded) |
//! | 2..12  | sequence number, per connection, from 0                       |
//! | 12..22 | intended send time, monotonic ns                              |
//! | 22..32 | actual send time, monotonic ns                                |
//!
//! Each u64 is stored as ten 7-bit groups, least significant first. The bytes after the header
//! are a filler derived from the sequence number, so an echo can be checked byte for byte without
//! keeping a copy of what was sent. Encoding and checking work on borrowed buffers and never
//! allocate.

/// Length of the header; the smallest message wsbench sends.
pub const HEADER_LEN: usize = 32;

const MAGIC: u8 = b'W';
const FLAGS_BASE: u8 = b'0';
const FLAG_WARMUP: u8 = 1;
const SEQ: usize = 2;
const INTENDED: usize = 12;
const SENT: usize = 22;
const GROUPS: usize = 10;

/// The decoded header of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageHeader {
    pub seq: u64,
    pub intended_ns: u64,
    pub sent_ns: u64,
    /// Sent during warm-up: echoed like any other message but left out of every histogram.
    pub warmup: bool,
}

impl MessageHeader {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`HEADER_LEN`].
    pub fn encode(&self, buf: &mut [u8]) {
        buf[0] = MAGIC;
        buf[1] = FLAGS_BASE + if self.warmup { FLAG_WARMUP } else { 0 };
        put_u64(&mut buf[SEQ..SEQ + GROUPS], self.seq);
        put_u64(&mut buf[INTENDED..INTENDED + GROUPS], self.intended_ns);
        put_u64(&mut buf[SENT..SENT + GROUPS], self.sent_ns);
    }

    /// Reads a header; `None` when `buf` is too short or is not a wsbench message.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        if buf.len() < HEADER_LEN || buf[0] != MAGIC {
            return None;
        }
        let flags = buf[1].checked_sub(FLAGS_BASE)?;
        if flags > FLAG_WARMUP {
            return None;
        }
        Some(Self {
            seq: get_u64(&buf[SEQ..SEQ + GROUPS])?,
            intended_ns: get_u64(&buf[INTENDED..INTENDED + GROUPS])?,
            sent_ns: get_u64(&buf[SENT..SENT + GROUPS])?,
            warmup: flags & FLAG_WARMUP != 0,
        })
    }
}

/// Overwrites only the actual-send-time field, for stamping a prepared message just before it goes out.
pub fn stamp_sent(buf: &mut [u8], sent_ns: u64) {
    put_u64(&mut buf[SENT..SENT + GROUPS], sent_ns);
}

/// Fills `buf[HEADER_LEN..]` with the filler for `seq` (lower-case ASCII letters).
pub fn fill_payload(buf: &mut [u8], seq: u64) {
    let start = (seq % 26) as usize;
    for (i, b) in buf.iter_mut().enumerate().skip(HEADER_LEN) {
        *b = b'a' + ((start + i) % 26) as u8;
    }
}

/// True when `buf[HEADER_LEN..]` is exactly the filler for `seq`.
pub fn payload_matches(buf: &[u8], seq: u64) -> bool {
    let start = (seq % 26) as usize;
    buf.iter().enumerate().skip(HEADER_LEN).all(|(i, &b)| b == b'a' + ((start + i) % 26) as u8)
}

fn put_u64(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut() {
        *b = (v & 0x7f) as u8;
        v >>= 7;
    }
}

fn get_u64(bytes: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b & 0x80 != 0 {
            return None;
        }
        // The tenth group holds only the top bit of a u64; anything more is not ours.
        if i == GROUPS - 1 && b > 1 {
            return None;
        }
        v |= u64::from(b) << (7 * i);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_extremes() {
        for &v in &[0u64, 1, 127, 128, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let h = MessageHeader { seq: v, intended_ns: v ^ 0x5555, sent_ns: v.rotate_left(7), warmup: v % 2 == 0 };
            let mut buf = [0u8; HEADER_LEN];
            h.encode(&mut buf);
            assert_eq!(MessageHeader::decode(&buf), Some(h));
        }
    }

    #[test]
    fn message_is_valid_utf8() {
        let mut buf = vec![0u8; 100];
        MessageHeader { seq: u64::MAX, intended_ns: u64::MAX, sent_ns: 12345, warmup: true }.encode(&mut buf);
        fill_payload(&mut buf, 77);
        assert!(std::str::from_utf8(&buf).is_ok());
        assert!(payload_matches(&buf, 77));
        assert!(!payload_matches(&buf, 78));
    }

    #[test]
    fn stamping_changes_only_the_sent_time() {
        let mut buf = [0u8; HEADER_LEN];
        let h = MessageHeader { seq: 9, intended_ns: 1_000, sent_ns: 0, warmup: false };
        h.encode(&mut buf);
        stamp_sent(&mut buf, 2_500);
        assert_eq!(MessageHeader::decode(&buf), Some(MessageHeader { sent_ns: 2_500, ..h }));
    }

    #[test]
    fn rejects_foreign_bytes() {
        assert_eq!(MessageHeader::decode(b"hello"), None);
        assert_eq!(MessageHeader::decode(&[b'X'; HEADER_LEN]), None);
        let mut buf = [0u8; HEADER_LEN];
        MessageHeader::default().encode(&mut buf);
        buf[5] = 0xff;
        assert_eq!(MessageHeader::decode(&buf), None);
    }

    #[test]
    fn a_flipped_filler_byte_is_caught() {
        let mut buf = vec![0u8; 64];
        fill_payload(&mut buf, 3);
        buf[40] ^= 1;
        assert!(!payload_matches(&buf, 3));
    }
}
