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
    #[inline]
    pub fn encode(&self, buf: &mut [u8]) {
        buf[0] = MAGIC;
        buf[1] = FLAGS_BASE + if self.warmup { FLAG_WARMUP } else { 0 };
        put_u64(&mut buf[SEQ..SEQ + GROUPS], self.seq);
        put_u64(&mut buf[INTENDED..INTENDED + GROUPS], self.intended_ns);
        put_u64(&mut buf[SENT..SENT + GROUPS], self.sent_ns);
    }

    /// True when `buf` starts with exactly this header: what `decode(buf) == Some(*self)`
    /// says (the encoding is one-to-one), for less work than decoding.
    #[inline]
    pub fn is_at_start_of(&self, buf: &[u8]) -> bool {
        let mut mine = [0u8; HEADER_LEN];
        self.encode(&mut mine);
        buf.get(..HEADER_LEN) == Some(&mine[..])
    }

    /// Reads a header; `None` when `buf` is too short or is not a wsbench message.
    #[inline]
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

#[inline(always)]
fn put_u64(out: &mut [u8], v: u64) {
    // Eight groups at once: the low 56 bits spread into the 7 low bits of each byte
    // (28 bits per half, then 14 per quarter, then 7 per byte), then the last eight bits.
    let mut t = v & 0x00FF_FFFF_FFFF_FFFF;
    t = ((t & 0x00FF_FFFF_F000_0000) << 4) | (t & 0x0000_0000_0FFF_FFFF);
    t = ((t & 0x0FFF_C000_0FFF_C000) << 2) | (t & 0x0000_3FFF_0000_3FFF);
    t = ((t & 0x3F80_3F80_3F80_3F80) << 1) | (t & 0x007F_007F_007F_007F);
    out[..8].copy_from_slice(&t.to_le_bytes());
    out[8] = ((v >> 56) & 0x7f) as u8;
    out[9] = (v >> 63) as u8;
}

#[inline(always)]
fn get_u64(bytes: &[u8]) -> Option<u64> {
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[..8]);
    let mut t = u64::from_le_bytes(low);
    let (b8, b9) = (bytes[8], bytes[9]);
    // Every group below 0x80; the tenth holds only the top bit of a u64, anything more is not ours.
    if t & 0x8080_8080_8080_8080 != 0 || b8 & 0x80 != 0 || b9 > 1 {
        return None;
    }
    t = ((t & 0x7F00_7F00_7F00_7F00) >> 1) | (t & 0x007F_007F_007F_007F);
    t = ((t & 0x3FFF_0000_3FFF_0000) >> 2) | (t & 0x0000_3FFF_0000_3FFF);
    t = ((t & 0x0FFF_FFFF_0000_0000) >> 4) | (t & 0x0000_0000_0FFF_FFFF);
    Some(t | (u64::from(b8) << 56) | (u64::from(b9) << 63))
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
    fn comparing_encodings_says_what_decoding_says() {
        let h = MessageHeader { seq: 77, intended_ns: 1 << 40, sent_ns: (1 << 40) + 9, warmup: false };
        let mut buf = [0u8; HEADER_LEN + 4];
        h.encode(&mut buf);
        assert!(h.is_at_start_of(&buf));
        assert!(!h.is_at_start_of(&buf[..HEADER_LEN - 1]), "too short");
        for i in 0..HEADER_LEN {
            for bit in 0..8 {
                let mut other = buf;
                other[i] ^= 1 << bit;
                assert_eq!(h.is_at_start_of(&other), MessageHeader::decode(&other) == Some(h), "byte {i} bit {bit}");
            }
        }
        assert!(!MessageHeader { warmup: true, ..h }.is_at_start_of(&buf));
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
    fn groups_match_the_byte_at_a_time_definition() {
        // The layout as documented: ten 7-bit groups, least significant first.
        fn reference(v: u64) -> [u8; GROUPS] {
            std::array::from_fn(|i| ((v >> (7 * i)) & 0x7f) as u8)
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut values = vec![0, 1, 0x7f, 0x80, 1 << 55, 1 << 56, (1 << 56) - 1, 1 << 63, u64::MAX];
        values.extend((0..64).map(|b| 1u64 << b));
        values.extend((0..1000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }));
        for v in values {
            let mut out = [0u8; GROUPS];
            put_u64(&mut out, v);
            assert_eq!(out, reference(v), "{v:#x}");
            assert_eq!(get_u64(&out), Some(v), "{v:#x}");
        }
        // Any byte with its top bit set, or a tenth group above 1, is not a wsbench number.
        for i in 0..GROUPS {
            let mut out = reference(12345);
            out[i] |= 0x80;
            assert_eq!(get_u64(&out), None, "byte {i}");
        }
        let mut out = reference(0);
        out[9] = 2;
        assert_eq!(get_u64(&out), None);
    }

    #[test]
    fn a_flipped_filler_byte_is_caught() {
        let mut buf = vec![0u8; 64];
        fill_payload(&mut buf, 3);
        buf[40] ^= 1;
        assert!(!payload_matches(&buf, 3));
    }
}
