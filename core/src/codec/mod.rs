//! An RFC 6455 WebSocket frame codec that never allocates.
//!
//! This module owns the wire format and its rules: frame headers ([`frame`] parses them,
//! [`write`](mod@write) writes them), masking ([`mask`]), fragmented messages and their size limit
//! ([`message`]), streaming UTF-8 validation of text messages ([`utf8`]), and close frames
//! ([`close`]). Every function works on borrowed bytes or fixed-size stack buffers that the
//! caller owns: the codec holds no buffers, does no I/O and never touches the heap, so a
//! connection built on it allocates exactly what its owner chooses to.
//!
//! It must not own sockets, buffers or timers, and must not decide policy that belongs to an
//! engine (what to echo, when to flush, how long to wait for a close): it only says what the
//! bytes mean and which close code a violation earns ([`ProtocolError::close_code`]).
//!
//! # Reading, in the order an engine does it
//!
//! 1. [`frame::parse`] looks at the start of the buffered bytes. It first checks that a whole
//!    frame is there ([`Parsed::Incomplete`] says how many bytes are needed), validating the
//!    header as soon as its bytes arrive, so a bad or oversized frame fails before its payload
//!    is awaited. [`frame::parse_header`] answers as soon as the header is complete, for a
//!    reader that handles a long payload as it arrives.
//! 2. The payload is unmasked in place with [`mask::apply`] (or piece by piece with
//!    [`mask::apply_at`]).
//! 3. Data frames go through a [`MessageAssembler`], which enforces the fragmentation rules and
//!    the message size limit and validates text incrementally; control frames are answered
//!    directly (pong for ping, [`close::parse`] then an echoed close).
//!
//! # Writing
//!
//! [`write::header`] writes a header into a `[u8; 14]` on the stack; the payload follows it
//! unchanged (server frames are unmasked) or masked with [`mask::apply`] (client frames).
//! [`close::payload`] builds a close frame's payload into a stack buffer.
//!
//! # Extensions
//!
//! permessage-deflate (RFC 7692) is the one extension: [`deflate`] negotiates it and keeps a
//! connection's zlib state. Until it is negotiated the reserved bits must be zero; after, RSV1
//! marks a compressed message's first frame ([`frame::parse_with`] lets it through, the
//! [`MessageAssembler`] checks where it appears). The deflate state is the one part of the
//! codec that owns memory, allocated once per connection and reused.

pub mod close;
pub mod deflate;
mod error;
pub mod frame;
pub mod mask;
pub mod message;
#[cfg(test)]
mod props;
pub mod utf8;
pub mod write;

pub use error::ProtocolError;
pub use frame::{Frame, Opcode, Parsed};
pub use message::{MessageAssembler, MessageKind, Step};

/// Which end of the connection this codec speaks for. It decides the masking rule: a client
/// masks every frame it sends, a server never does, and each side refuses frames that break
/// the rule (RFC 6455 section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

impl Role {
    /// True when frames this role *receives* must be masked (a server reading a client).
    #[inline]
    pub fn expects_masked(self) -> bool {
        matches!(self, Self::Server)
    }
}

/// Largest payload of a control frame (close, ping, pong); RFC 6455 section 5.5.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Longest frame header: 2 bytes, a 64-bit length and a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;
