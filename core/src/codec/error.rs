//! Every way the peer can break the protocol, and the close code each one earns.
//!
//! The codec only reports; the engine sends the close frame. Errors are `Copy` and carry no
//! heap data, so reporting one allocates nothing either.

use super::close::code;

/// A violation of RFC 6455 by the peer, or of our size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("reserved bits {0:#05b} set where no negotiated extension allows them")]
    ReservedBits(u8),
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    #[error("control frame with a {0}-byte payload; at most 125 bytes are allowed")]
    ControlFrameTooLong(u64),
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    #[error("64-bit payload length with its most significant bit set")]
    LengthOverflow,
    #[error("unmasked frame from a client")]
    UnmaskedFrame,
    #[error("masked frame from a server")]
    MaskedFrame,
    #[error("{len}-byte frame or message over the {max}-byte limit")]
    TooLarge { len: u64, max: usize },
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    #[error("new data frame while a fragmented message is still in progress")]
    ExpectedContinuation,
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    #[error("close frame with a 1-byte payload")]
    CloseTooShort,
    #[error("close frame with invalid status code {0}")]
    InvalidCloseCode(u16),
    #[error("close frame reason is not valid UTF-8")]
    CloseReasonNotUtf8,
    #[error("compressed message does not inflate (invalid deflate data)")]
    BadCompressedData,
}

impl ProtocolError {
    /// The status code of the close frame that answers this error (RFC 6455 section 7.4.1):
    /// 1009 for the size limit, 1007 for bad UTF-8, 1002 for everything else.
    pub fn close_code(self) -> u16 {
        match self {
            Self::TooLarge { .. } => code::TOO_BIG,
            Self::InvalidUtf8 | Self::CloseReasonNotUtf8 => code::INVALID_PAYLOAD,
            Self::ReservedBits(_)
            | Self::UnknownOpcode(_)
            | Self::ControlFrameTooLong(_)
            | Self::FragmentedControlFrame
            | Self::LengthOverflow
            | Self::UnmaskedFrame
            | Self::MaskedFrame
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::CloseTooShort
            | Self::InvalidCloseCode(_)
            | Self::BadCompressedData => code::PROTOCOL_ERROR,
        }
    }

    /// A short reason for the close frame (a static string: building it allocates nothing).
    pub fn close_reason(self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "message too big",
            Self::InvalidUtf8 | Self::CloseReasonNotUtf8 => "invalid UTF-8",
            _ => "protocol error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_close_code() {
        assert_eq!(
            ProtocolError::TooLarge { len: 2, max: 1 }.close_code(),
            1009
        );
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
        assert_eq!(ProtocolError::CloseReasonNotUtf8.close_code(), 1007);
        for e in [
            ProtocolError::ReservedBits(1),
            ProtocolError::UnknownOpcode(3),
            ProtocolError::ControlFrameTooLong(126),
            ProtocolError::FragmentedControlFrame,
            ProtocolError::LengthOverflow,
            ProtocolError::UnmaskedFrame,
            ProtocolError::MaskedFrame,
            ProtocolError::UnexpectedContinuation,
            ProtocolError::ExpectedContinuation,
            ProtocolError::CloseTooShort,
            ProtocolError::InvalidCloseCode(1005),
            ProtocolError::BadCompressedData,
        ] {
            assert_eq!(e.close_code(), 1002, "{e}");
            assert_eq!(e.close_reason(), "protocol error");
        }
        assert!(ProtocolError::TooLarge { len: 2, max: 1 }
            .to_string()
            .contains("1-byte limit"));
    }
}
