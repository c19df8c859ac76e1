//! Close frames: reading and checking the peer's, building our own (RFC 6455 sections 5.5.1
//! and 7.4).
//!
//! A close payload is empty, or a 2-byte big-endian status code followed by a UTF-8 reason.
//! [`parse`] checks both against the rules; [`payload`] builds one into a stack buffer. Which
//! code to answer with, and when to close the socket, is the engine's business.

use super::{ProtocolError, MAX_CONTROL_PAYLOAD};

/// Status codes this crate sends or names.
pub mod code {
    /// The purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away: a server shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Text that is not UTF-8 (or data inconsistent with its type).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message violating the endpoint's policy.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message too big to process.
    pub const TOO_BIG: u16 = 1009;
    /// The client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: u16 = 1010;
    /// An unexpected condition in the server.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// True for a status code a peer may put on the wire: 1000-1003 and 1007-1011 (defined by RFC
/// 6455), 3000-3999 (registered) and 4000-4999 (private use). 1004-1006 and 1015 are reserved
/// or for local use only, the rest of 1000-2999 is unassigned, and below 1000 is unused.
#[inline]
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// A close frame's status code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    pub code: u16,
    pub reason: &'a str,
}

/// Reads an unmasked close payload: `Ok(None)` when it is empty (no status code). A 1-byte
/// payload or an invalid code is a protocol error (1002); a reason that is not UTF-8 is 1007.
pub fn parse(payload: &[u8]) -> Result<Option<Close<'_>>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::CloseTooShort),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_code(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::CloseReasonNotUtf8)?;
            Ok(Some(Close { code, reason }))
        }
    }
}

/// Writes a close payload with `code` and `reason` into `out` and returns its length. A reason
/// longer than the 123 bytes that fit is cut at a character boundary.
///
/// The code should satisfy [`is_valid_code`]; sending 1005, 1006 or 1015 would be the caller's
/// protocol error (checked in debug builds).
pub fn payload(out: &mut [u8; MAX_CONTROL_PAYLOAD], code: u16, reason: &str) -> usize {
    debug_assert!(is_valid_code(code), "close code {code} must not be sent");
    out[..2].copy_from_slice(&code.to_be_bytes());
    let room = MAX_CONTROL_PAYLOAD - 2;
    let mut cut = reason.len().min(room);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    out[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
    2 + cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_valid_exactly_where_rfc_6455_says() {
        let valid: Vec<u16> = (0..=u16::MAX).filter(|&c| is_valid_code(c)).collect();
        assert_eq!(valid.len(), 4 + 5 + 2000);
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(is_valid_code(c), "{c}");
        }
        for c in [
            0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_valid_code(c), "{c}");
        }
    }

    #[test]
    fn payloads_parse_or_fail_with_the_right_code() {
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(
            parse(&[0x03, 0xE8]),
            Ok(Some(Close {
                code: 1000,
                reason: ""
            }))
        );
        assert_eq!(
            parse(b"\x0f\xa0bye \xce\xba"),
            Ok(Some(Close {
                code: 4000,
                reason: "bye κ"
            }))
        );
        let short = parse(&[0x03]).unwrap_err();
        assert_eq!(
            (short, short.close_code()),
            (ProtocolError::CloseTooShort, 1002)
        );
        let bad = parse(&[0x03, 0xED]).unwrap_err(); // 1005
        assert_eq!(
            (bad, bad.close_code()),
            (ProtocolError::InvalidCloseCode(1005), 1002)
        );
        let utf8 = parse(b"\x03\xe8\xce").unwrap_err();
        assert_eq!(
            (utf8, utf8.close_code()),
            (ProtocolError::CloseReasonNotUtf8, 1007)
        );
    }

    #[test]
    fn built_payloads_parse_back() {
        let mut out = [0u8; MAX_CONTROL_PAYLOAD];
        let n = payload(&mut out, code::GOING_AWAY, "server shutting down");
        assert_eq!(
            parse(&out[..n]),
            Ok(Some(Close {
                code: 1001,
                reason: "server shutting down"
            }))
        );
        let n = payload(&mut out, code::NORMAL, "");
        assert_eq!(&out[..n], &[0x03, 0xE8]);
        // 122 ASCII bytes then a 2-byte character: only the ASCII fits before the 123-byte cut.
        let long = format!("{}é", "a".repeat(122));
        let n = payload(&mut out, code::PROTOCOL_ERROR, &long);
        assert_eq!(n, 124);
        assert_eq!(parse(&out[..n]).unwrap().unwrap().reason, &long[..122]);
    }
}
