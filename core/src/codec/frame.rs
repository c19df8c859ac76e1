//! Frame headers from borrowed bytes: checking that a whole frame is buffered, then parsing it.
//!
//! [`parse`] reads the start of a buffer and says either how many bytes it still needs
//! ([`Parsed::Incomplete`]) or where the first frame's payload lies ([`Parsed::Frame`]); it never
//! copies, unmasks or allocates. It validates each header field as soon as its byte is there, so
//! a bad frame fails fast and an oversized one fails before its payload is read. Message-level
//! rules (continuations, UTF-8, message size) belong to [`super::message`], close payloads to
//! [`super::close`].

use std::ops::Range;

use super::{ProtocolError, Role, MAX_CONTROL_PAYLOAD};

/// The frame opcodes RFC 6455 defines; the others (3-7, 0xB-0xF) are reserved and refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// The opcode with wire value `bits` (the low nibble of a frame's first byte).
    #[inline]
    pub fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The wire value.
    #[inline]
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong: at most 125 bytes, never fragmented, allowed between fragments.
    #[inline]
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// The header of a frame that is completely buffered: everything needed to find and unmask its
/// payload, which is `buf[header_len..header_len + payload_len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Last frame of its message.
    pub fin: bool,
    /// The three reserved bits: 0, or [`super::deflate::RSV1`] on a compressed message's first
    /// frame once permessage-deflate is negotiated (other frames with any set are refused).
    pub rsv: u8,
    pub opcode: Opcode,
    /// The masking key: present on every frame a client sends, absent on a server's.
    pub mask: Option<[u8; 4]>,
    /// Bytes before the payload: 2 to 14.
    pub header_len: usize,
    pub payload_len: usize,
}

impl Frame {
    /// Header and payload: how many bytes of the buffer this frame takes up.
    #[inline]
    pub fn len(&self) -> usize {
        self.header_len + self.payload_len
    }

    /// Never true: a frame always has a header. (Here for `len`'s sake.)
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Where the payload lies in the buffer the frame was parsed from.
    #[inline]
    pub fn payload_range(&self) -> Range<usize> {
        self.header_len..self.len()
    }
}

/// What the start of a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole frame yet: the buffer must hold at least this many bytes before parsing can
    /// get further. Exact once the header is complete (header plus payload); a lower bound
    /// before that.
    Incomplete(usize),
    /// A whole frame starts the buffer.
    Frame(Frame),
}

/// Parses the frame at the start of `buf` as `role` receives it: [`Parsed::Frame`] only when
/// the whole frame, payload included, is in `buf`.
///
/// `max_payload` bounds data frames; a longer one is [`ProtocolError::TooLarge`] (close 1009)
/// as soon as its length field is read. Control frames are bounded by the protocol's 125 bytes
/// instead. Minimal length encoding is not enforced: RFC 6455 asks it of senders, and refusing
/// a well-formed frame for it would only break peers for no safety gain.
#[inline]
pub fn parse(buf: &[u8], role: Role, max_payload: usize) -> Result<Parsed, ProtocolError> {
    parse_with(buf, role, max_payload, 0)
}

/// As [`parse`], also accepting the reserved bits in `rsv_allowed` (as in [`Frame::rsv`]):
/// [`super::deflate::RSV1`] once permessage-deflate is negotiated. Which frames may carry
/// them is the [`super::MessageAssembler`]'s to check.
#[inline]
pub fn parse_with(
    buf: &[u8],
    role: Role,
    max_payload: usize,
    rsv_allowed: u8,
) -> Result<Parsed, ProtocolError> {
    match parse_header_with(buf, role, max_payload, rsv_allowed)? {
        Parsed::Frame(f) if buf.len() < f.len() => Ok(Parsed::Incomplete(f.len())),
        parsed => Ok(parsed),
    }
}

/// As [`parse`], but answers [`Parsed::Frame`] as soon as the *header* is complete, whether or
/// not the payload is (`buf.len() < frame.len()` says it is not). For a reader that handles a
/// payload as it arrives, e.g. to validate a long text frame before its end is read.
pub fn parse_header(buf: &[u8], role: Role, max_payload: usize) -> Result<Parsed, ProtocolError> {
    parse_header_with(buf, role, max_payload, 0)
}

/// As [`parse_header`], accepting the reserved bits in `rsv_allowed` (see [`parse_with`]).
#[inline]
pub fn parse_header_with(
    buf: &[u8],
    role: Role,
    max_payload: usize,
    rsv_allowed: u8,
) -> Result<Parsed, ProtocolError> {
    let Some(&b0) = buf.first() else {
        return Ok(Parsed::Incomplete(2));
    };
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0x7;
    if rsv & !rsv_allowed != 0 {
        return Err(ProtocolError::ReservedBits(rsv));
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(ProtocolError::UnknownOpcode(b0 & 0x0F))?;
    if opcode.is_control() && !fin {
        return Err(ProtocolError::FragmentedControlFrame);
    }

    let Some(&b1) = buf.get(1) else {
        return Ok(Parsed::Incomplete(2));
    };
    let masked = b1 & 0x80 != 0;
    if masked != role.expects_masked() {
        return Err(if masked {
            ProtocolError::MaskedFrame
        } else {
            ProtocolError::UnmaskedFrame
        });
    }
    let len7 = b1 & 0x7F;
    let len_bytes = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
    // The length is checked as soon as its bytes are here, before the masking key.
    if buf.len() < 2 + len_bytes {
        return Ok(Parsed::Incomplete(header_len));
    }

    let payload_len = match len_bytes {
        0 => u64::from(len7),
        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        _ => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthOverflow);
            }
            len
        }
    };
    let limit = if opcode.is_control() {
        if payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(ProtocolError::ControlFrameTooLong(payload_len));
        }
        MAX_CONTROL_PAYLOAD
    } else {
        max_payload
    };
    let too_large = ProtocolError::TooLarge {
        len: payload_len,
        max: limit,
    };
    if payload_len > limit as u64 {
        return Err(too_large);
    }
    // Both fit in usize now; only a limit near usize::MAX could make their sum (`Frame::len`)
    // overflow.
    let payload_len = payload_len as usize;
    if header_len.checked_add(payload_len).is_none() {
        return Err(too_large);
    }

    if buf.len() < header_len {
        return Ok(Parsed::Incomplete(header_len));
    }
    let mask = masked.then(|| {
        let k = &buf[header_len - 4..header_len];
        [k[0], k[1], k[2], k[3]]
    });
    Ok(Parsed::Frame(Frame {
        fin,
        rsv,
        opcode,
        mask,
        header_len,
        payload_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: usize = 1 << 30;

    fn server(buf: &[u8]) -> Result<Parsed, ProtocolError> {
        parse(buf, Role::Server, BIG)
    }

    fn client(buf: &[u8]) -> Result<Parsed, ProtocolError> {
        parse(buf, Role::Client, BIG)
    }

    fn frame(p: Result<Parsed, ProtocolError>) -> Frame {
        match p {
            Ok(Parsed::Frame(f)) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn rfc_examples_parse() {
        // RFC 6455 section 5.7: unmasked "Hello" (client side), masked "Hello" (server side).
        let f = frame(client(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']));
        assert_eq!(
            f,
            Frame {
                fin: true,
                rsv: 0,
                opcode: Opcode::Text,
                mask: None,
                header_len: 2,
                payload_len: 5
            }
        );
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let f = frame(server(&masked));
        assert_eq!(f.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!((f.header_len, f.payload_len, f.len()), (6, 5, 11));
        assert_eq!(f.payload_range(), 6..11);
        // A fragmented unmasked text message: "Hel" then "lo".
        let first = frame(client(&[0x01, 0x03, b'H', b'e', b'l']));
        assert_eq!((first.fin, first.opcode), (false, Opcode::Text));
        let last = frame(client(&[0x80, 0x02, b'l', b'o']));
        assert_eq!((last.fin, last.opcode), (true, Opcode::Continuation));
    }

    #[test]
    fn lengths_use_all_three_encodings() {
        let mut buf = vec![0x82, 126, 0x01, 0x00];
        buf.resize(4 + 256, 0);
        let f = frame(client(&buf));
        assert_eq!((f.header_len, f.payload_len), (4, 256));
        let mut buf = vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        buf.resize(10 + 65536, 0);
        let f = frame(client(&buf));
        assert_eq!((f.header_len, f.payload_len), (10, 65536));
        // Non-minimal encodings are accepted: 5 bytes in the 16-bit and 64-bit forms.
        let f = frame(client(&[0x82, 126, 0, 5, 1, 2, 3, 4, 5]));
        assert_eq!((f.header_len, f.payload_len), (4, 5));
        let f = frame(client(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5]));
        assert_eq!((f.header_len, f.payload_len), (10, 5));
        // Even for a control frame, as long as the value is at most 125.
        let f = frame(client(&[0x89, 126, 0, 1, b'x']));
        assert_eq!((f.opcode, f.payload_len), (Opcode::Ping, 1));
    }

    #[test]
    fn incomplete_frames_say_what_they_need() {
        assert_eq!(client(&[]), Ok(Parsed::Incomplete(2)));
        assert_eq!(client(&[0x82]), Ok(Parsed::Incomplete(2)));
        assert_eq!(client(&[0x82, 126, 0]), Ok(Parsed::Incomplete(4)));
        assert_eq!(client(&[0x82, 127, 0, 0]), Ok(Parsed::Incomplete(10)));
        assert_eq!(server(&[0x82, 0x85, 1, 2]), Ok(Parsed::Incomplete(6)));
        assert_eq!(
            server(&[0x82, 0x85, 1, 2, 3, 4, 9]),
            Ok(Parsed::Incomplete(11))
        );
        assert_eq!(client(&[0x82, 126, 1, 0, 7]), Ok(Parsed::Incomplete(260)));
        // Every proper prefix of a frame is incomplete, and asks for no more than the frame.
        let whole = [0x82, 0x83, 9, 8, 7, 6, 1, 2, 3];
        for cut in 0..whole.len() {
            match server(&whole[..cut]) {
                Ok(Parsed::Incomplete(n)) => assert!(n > cut && n <= whole.len(), "{cut}: {n}"),
                other => panic!("{cut}: {other:?}"),
            }
        }
        // Bytes after the frame are the next frame's business.
        let mut two = whole.to_vec();
        two.extend_from_slice(&[0x82]);
        assert_eq!(frame(server(&two)).len(), whole.len());
    }

    #[test]
    fn headers_parse_before_their_payload_arrives() {
        let head_only = [0x81, 0x85, 1, 2, 3, 4, 9];
        assert_eq!(server(&head_only), Ok(Parsed::Incomplete(11)));
        let f = match parse_header(&head_only, Role::Server, BIG) {
            Ok(Parsed::Frame(f)) => f,
            other => panic!("{other:?}"),
        };
        assert_eq!((f.opcode, f.header_len, f.len()), (Opcode::Text, 6, 11));
        assert_eq!(
            parse_header(&head_only[..5], Role::Server, BIG),
            Ok(Parsed::Incomplete(6))
        );
        assert_eq!(
            parse_header(&[0x81, 0x05], Role::Server, BIG),
            Err(ProtocolError::UnmaskedFrame)
        );
    }

    #[test]
    fn reserved_bits_are_refused_without_extensions() {
        for rsv in 1..8u8 {
            let b0 = 0x81 | (rsv << 4);
            assert_eq!(client(&[b0, 0]), Err(ProtocolError::ReservedBits(rsv)));
            // Refused from the first byte alone.
            assert_eq!(client(&[b0]), Err(ProtocolError::ReservedBits(rsv)));
        }
    }

    #[test]
    fn reserved_opcodes_are_refused() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(client(&[0x80 | op]), Err(ProtocolError::UnknownOpcode(op)));
        }
        for op in [0u8, 1, 2, 8, 9, 0xA] {
            assert_eq!(Opcode::from_bits(op).map(Opcode::bits), Some(op));
        }
    }

    #[test]
    fn control_frames_are_short_and_whole() {
        for op in [0x8u8, 0x9, 0xA] {
            assert_eq!(client(&[op, 0]), Err(ProtocolError::FragmentedControlFrame));
            let mut ok = vec![0x80 | op, 125];
            ok.resize(127, 0);
            assert_eq!(frame(client(&ok)).payload_len, 125);
            assert_eq!(
                client(&[0x80 | op, 126, 0, 126]),
                Err(ProtocolError::ControlFrameTooLong(126))
            );
            assert_eq!(
                client(&[0x80 | op, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
                Err(ProtocolError::ControlFrameTooLong(65536))
            );
        }
        // A tiny data limit does not apply to control frames.
        let mut ping = vec![0x89, 100];
        ping.resize(102, 0);
        assert_eq!(frame(parse(&ping, Role::Client, 1)).payload_len, 100);
    }

    #[test]
    fn masking_follows_the_role() {
        assert_eq!(server(&[0x81, 0x00]), Err(ProtocolError::UnmaskedFrame));
        assert_eq!(client(&[0x81, 0x80]), Err(ProtocolError::MaskedFrame));
        assert!(frame(server(&[0x81, 0x80, 1, 2, 3, 4])).mask.is_some());
        assert!(frame(client(&[0x81, 0x00])).mask.is_none());
    }

    #[test]
    fn a_64_bit_length_must_have_its_top_bit_clear() {
        let buf = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(client(&buf), Err(ProtocolError::LengthOverflow));
        let buf = [0x82, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(matches!(client(&buf), Err(ProtocolError::TooLarge { .. })));
    }

    #[test]
    fn the_size_limit_fails_before_the_payload_arrives() {
        let limit = 1000;
        let at_limit = [0x82, 0xFE, 0x03, 0xE8, 1, 2, 3, 4];
        assert_eq!(
            parse(&at_limit, Role::Server, limit),
            Ok(Parsed::Incomplete(8 + 1000))
        );
        let over = [0x82, 0xFE, 0x03, 0xE9];
        assert_eq!(
            parse(&over, Role::Server, limit),
            Err(ProtocolError::TooLarge {
                len: 1001,
                max: 1000
            })
        );
        assert_eq!(
            parse(&over, Role::Server, limit).unwrap_err().close_code(),
            1009
        );
        // Applies to continuation frames too.
        assert!(parse(&[0x00, 0xFE, 0x03, 0xE9], Role::Server, limit).is_err());
    }
}
