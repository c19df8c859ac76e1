//! Streaming UTF-8 validation for text messages that arrive in pieces.
//!
//! A text message may be split anywhere: across frames, and across reads within a frame, even in
//! the middle of a character. [`Utf8Validator`] checks each piece as it comes, with the standard
//! library's validator doing the work, and carries at most 3 bytes of an unfinished character
//! from one piece to the next. It fails as soon as the bytes seen so far cannot start valid
//! UTF-8 (Autobahn's "fail fast" cases), not only at the end of the message. It owns those 3
//! bytes and nothing else: no buffer of the message, no allocation.

use super::ProtocolError;

/// Validates one text message fed to it in pieces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    /// An unfinished character: a valid prefix of a 2-4 byte sequence, `len` bytes long.
    /// The fourth slot takes the byte that completes a 4-byte character.
    pending: [u8; 4],
    len: u8,
}

/// Byte length of the character a lead byte starts. Only called on leads of unfinished
/// characters, which the standard library has already checked (0xC2..=0xF4).
#[inline]
fn width(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0x80..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl Utf8Validator {
    pub const fn new() -> Self {
        Self {
            pending: [0; 4],
            len: 0,
        }
    }

    /// Bytes of an unfinished character carried over (0 to 3).
    #[inline]
    pub fn pending(&self) -> usize {
        usize::from(self.len)
    }

    /// Checks the next piece of the message. Fails if the bytes so far are not a prefix of
    /// valid UTF-8; the validator is then in an unspecified state until [`reset`](Self::reset).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.len != 0 {
            // Finish the carried-over character first, from as many new bytes as it lacks.
            let have = usize::from(self.len);
            let take = (width(self.pending[0]) - have).min(bytes.len());
            self.pending[have..have + take].copy_from_slice(&bytes[..take]);
            match std::str::from_utf8(&self.pending[..have + take]) {
                Ok(_) => {
                    self.len = 0;
                    bytes = &bytes[take..];
                }
                // Still unfinished, but still valid so far: all of `bytes` went into it.
                Err(e) if e.error_len().is_none() => {
                    self.len = (have + take) as u8;
                    return Ok(());
                }
                Err(_) => return Err(ProtocolError::InvalidUtf8),
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            // `None`: the input ends inside a character that is valid so far (at most 3 bytes).
            Err(e) if e.error_len().is_none() => {
                let tail = &bytes[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(ProtocolError::InvalidUtf8),
        }
    }

    /// Ends the message: an unfinished character at the end makes it invalid. Leaves the
    /// validator ready for the next message either way.
    pub fn finish(&mut self) -> Result<(), ProtocolError> {
        let complete = self.len == 0;
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(ProtocolError::InvalidUtf8)
        }
    }

    /// Forgets any unfinished character, for a new message.
    #[inline]
    pub fn reset(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_split(bytes: &[u8], cuts: &[usize]) -> bool {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            if v.feed(&bytes[start..cut]).is_err() {
                return false;
            }
            assert!(v.pending() <= 3);
            start = cut;
        }
        v.finish().is_ok()
    }

    #[test]
    fn valid_text_passes_split_at_every_byte() {
        let text = "κόσμε a€𝄞 ok \u{10FFFF}\u{0}";
        let bytes = text.as_bytes();
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                assert!(validate_split(bytes, &[a, b]), "cuts {a} {b}");
            }
        }
        let every: Vec<usize> = (1..bytes.len()).collect();
        assert!(validate_split(bytes, &every));
    }

    #[test]
    fn invalid_sequences_fail_wherever_they_are_split() {
        let cases: &[&[u8]] = &[
            b"\xff",                // never valid
            b"\x80",                // lone continuation byte
            b"\xc0\xaf",            // overlong '/'
            b"\xe0\x80\xaf",        // overlong, 3 bytes
            b"\xed\xa0\x80",        // surrogate U+D800
            b"\xf4\x90\x80\x80",    // above U+10FFFF
            b"\xf5\x80\x80\x80",    // lead byte never valid
            b"ok\xce\xbax\xe2\x82", // truncated at the end
            b"\xe2\x82",            // only a prefix
        ];
        for bytes in cases {
            for cut in 0..=bytes.len() {
                assert!(!validate_split(bytes, &[cut]), "{bytes:x?} cut {cut}");
            }
        }
    }

    #[test]
    fn it_fails_fast_before_the_message_ends() {
        // Autobahn 6.3-6.4: the invalid byte must be refused when it arrives.
        let mut v = Utf8Validator::new();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        assert!(v.feed(b"\xf4").is_ok(), "F4 can start a valid character");
        assert_eq!(
            v.feed(b"\x90"),
            Err(ProtocolError::InvalidUtf8),
            "F4 90 cannot"
        );
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xed").is_ok());
        assert_eq!(
            v.feed(b"\xa0"),
            Err(ProtocolError::InvalidUtf8),
            "a surrogate"
        );
    }

    #[test]
    fn finish_resets_for_the_next_message() {
        let mut v = Utf8Validator::new();
        v.feed(b"\xe2\x82").unwrap();
        assert_eq!(v.pending(), 2);
        assert!(v.finish().is_err());
        assert_eq!(v.pending(), 0);
        v.feed(b"abc").unwrap();
        assert!(v.finish().is_ok());
    }
}
