//! Writing frame headers into a stack buffer.
//!
//! [`header`] fills a `[u8; 14]` (the longest header there is) and returns how many of its
//! bytes are used; the caller sends those bytes and then the payload. The shortest length
//! encoding is always used, as RFC 6455 section 5.2 asks of senders. Masking the payload is the
//! caller's job ([`super::mask::apply`] with the same key); this module never touches payloads
//! and never allocates.

use super::{Opcode, MAX_HEADER_LEN};

/// Length of the header [`header`] writes for this payload length, masked or not.
#[inline]
pub fn header_len(payload_len: usize, masked: bool) -> usize {
    let len_bytes = match payload_len {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    2 + len_bytes + if masked { 4 } else { 0 }
}

/// Writes the header of a frame with `payload_len` payload bytes into `out` and returns its
/// length (2 to 14). With `mask`, the mask bit is set and the key follows the length.
///
/// Control frames must be final and at most 125 bytes, and a continuation opcode only makes
/// sense after an unfinished data frame: keeping to the protocol is the caller's part.
#[inline]
pub fn header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    opcode: Opcode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
) -> usize {
    debug_assert!(!opcode.is_control() || (fin && payload_len <= super::MAX_CONTROL_PAYLOAD));
    out[0] = if fin { 0x80 } else { 0 } | opcode.bits();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = match payload_len {
        0..=125 => {
            out[1] = mask_bit | payload_len as u8;
            2
        }
        126..=0xFFFF => {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        }
    };
    if let Some(key) = mask {
        out[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(fin: bool, op: Opcode, len: usize, mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = header(&mut out, fin, op, len, mask);
        assert_eq!(n, header_len(len, mask.is_some()));
        out[..n].to_vec()
    }

    #[test]
    fn rfc_example_headers() {
        // RFC 6455 section 5.7.
        assert_eq!(written(true, Opcode::Text, 5, None), [0x81, 0x05]);
        assert_eq!(
            written(true, Opcode::Text, 5, Some([0x37, 0xfa, 0x21, 0x3d])),
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]
        );
        assert_eq!(written(false, Opcode::Text, 3, None), [0x01, 0x03]);
        assert_eq!(written(true, Opcode::Continuation, 2, None), [0x80, 0x02]);
        assert_eq!(written(true, Opcode::Ping, 5, None), [0x89, 0x05]);
        assert_eq!(
            written(true, Opcode::Binary, 256, None),
            [0x82, 0x7E, 0x01, 0x00]
        );
        assert_eq!(
            written(true, Opcode::Binary, 65536, None),
            [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]
        );
    }

    #[test]
    fn the_shortest_encoding_is_used_at_each_boundary() {
        for (len, n) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (16 << 20, 10),
        ] {
            assert_eq!(written(true, Opcode::Binary, len, None).len(), n, "{len}");
            assert_eq!(
                written(true, Opcode::Binary, len, Some([9; 4])).len(),
                n + 4,
                "{len}"
            );
        }
    }
}
