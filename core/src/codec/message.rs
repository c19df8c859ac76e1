//! Messages from frames: the fragmentation rules, the message size limit, and text validation.
//!
//! [`MessageAssembler`] is a small state machine a connection keeps: it sees each data frame's
//! header ([`begin_frame`](MessageAssembler::begin_frame)), its payload in as many pieces as the
//! reads deliver ([`payload`](MessageAssembler::payload)), and the frame's end
//! ([`end_frame`](MessageAssembler::end_frame)), which reports a finished message. It enforces
//! RFC 6455 section 5.4: a message is a text or binary frame followed by continuation frames
//! until one has FIN set; a new data frame before that, or a continuation without a message in
//! progress, is a protocol error; control frames may come between fragments and leave the
//! message alone. It counts declared payload lengths against the limit before the payload is
//! read, and validates text incrementally, so both kinds of violation fail early.
//!
//! It does not keep payload bytes: where a fragmented message is collected (or whether it is
//! at all) is the owner's choice. So it never allocates.

use super::frame::{Frame, Opcode};
use super::utf8::Utf8Validator;
use super::ProtocolError;

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

impl MessageKind {
    /// The opcode of the message's first (or only) frame.
    #[inline]
    pub fn opcode(self) -> Opcode {
        match self {
            Self::Text => Opcode::Text,
            Self::Binary => Opcode::Binary,
        }
    }
}

/// What a frame is to the message stream, once its header has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Close, ping or pong: answer it; the message in progress (if any) is untouched.
    Control(Opcode),
    /// A frame of a `kind` message; `first` when it starts the message, `last` when it ends it.
    /// A frame that is both is a whole message in one frame.
    Data {
        kind: MessageKind,
        first: bool,
        last: bool,
    },
}

/// A message whose last frame has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    pub kind: MessageKind,
    /// Payload bytes over all of its frames.
    pub len: usize,
}

/// Tracks the message in progress on one connection. See the module docs.
#[derive(Debug, Clone)]
pub struct MessageAssembler {
    max_message: usize,
    /// Kind of the message in progress; `None` between messages.
    current: Option<MessageKind>,
    /// Payload bytes of the message so far, counting the current frame whole.
    len: usize,
    /// The current frame has FIN set.
    last: bool,
    /// The message in progress is compressed (RSV1 on its first frame): its text is validated
    /// as it is inflated ([`inflated`](Self::inflated)), not from the frames' payloads.
    compressed: bool,
    utf8: Utf8Validator,
}

impl MessageAssembler {
    /// An assembler that refuses messages over `max_message` payload bytes (close 1009).
    pub fn new(max_message: usize) -> Self {
        Self {
            max_message,
            current: None,
            len: 0,
            last: false,
            compressed: false,
            utf8: Utf8Validator::new(),
        }
    }

    /// The kind of the fragmented message in progress, if one is.
    #[inline]
    pub fn in_progress(&self) -> Option<MessageKind> {
        self.current
    }

    /// Payload bytes the message in progress has declared so far.
    #[inline]
    pub fn message_len(&self) -> usize {
        self.len
    }

    /// Checks a frame's header against the message in progress and the size limit. For a
    /// data frame, call [`payload`](Self::payload) with its (unmasked) payload next, then
    /// [`end_frame`](Self::end_frame); control frames need neither.
    pub fn begin_frame(&mut self, frame: &Frame) -> Result<Step, ProtocolError> {
        // RSV1 (permessage-deflate) belongs on a message's first data frame only; the frame
        // parser has refused it already unless the extension was negotiated.
        let rsv1 = frame.rsv & super::deflate::RSV1 != 0;
        if frame.rsv & !super::deflate::RSV1 != 0
            || (rsv1 && !matches!(frame.opcode, Opcode::Text | Opcode::Binary))
        {
            return Err(ProtocolError::ReservedBits(frame.rsv));
        }
        let (kind, first) = match (frame.opcode, self.current) {
            (op, _) if op.is_control() => return Ok(Step::Control(op)),
            (Opcode::Text, None) => (MessageKind::Text, true),
            (Opcode::Binary, None) => (MessageKind::Binary, true),
            (Opcode::Text | Opcode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            (_, None) => return Err(ProtocolError::UnexpectedContinuation),
            (_, Some(kind)) => (kind, false),
        };
        let so_far = if first { 0 } else { self.len };
        let len = so_far
            .checked_add(frame.payload_len)
            .filter(|&n| n <= self.max_message)
            .ok_or(ProtocolError::TooLarge {
                len: (so_far as u64).saturating_add(frame.payload_len as u64),
                max: self.max_message,
            })?;
        if first {
            self.utf8.reset();
            self.compressed = rsv1;
        }
        self.current = Some(kind);
        self.len = len;
        self.last = frame.fin;
        Ok(Step::Data {
            kind,
            first,
            last: frame.fin,
        })
    }

    /// Takes the next piece of the current data frame's unmasked payload (any split works).
    /// Text is validated as it comes; binary is not looked at.
    /// A compressed message's payload is not looked at here: see [`inflated`](Self::inflated).
    #[inline]
    pub fn payload(&mut self, piece: &[u8]) -> Result<(), ProtocolError> {
        match self.current {
            Some(MessageKind::Text) if !self.compressed => self.utf8.feed(piece),
            _ => Ok(()),
        }
    }

    /// The message in progress is compressed: its frames' payloads go to an inflater, and
    /// what it inflates to [`inflated`](Self::inflated), before [`end_frame`](Self::end_frame).
    #[inline]
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// Takes the next inflated piece of a compressed message (text is validated as it comes).
    #[inline]
    pub fn inflated(&mut self, piece: &[u8]) -> Result<(), ProtocolError> {
        match self.current {
            Some(MessageKind::Text) => self.utf8.feed(piece),
            _ => Ok(()),
        }
    }

    /// Ends the current data frame; returns the message if the frame was its last.
    pub fn end_frame(&mut self) -> Result<Option<Completed>, ProtocolError> {
        if !self.last {
            return Ok(None);
        }
        let Some(kind) = self.current.take() else {
            return Ok(None);
        };
        self.last = false;
        if kind == MessageKind::Text {
            self.utf8.finish()?;
        }
        Ok(Some(Completed {
            kind,
            len: self.len,
        }))
    }

    /// Forgets the message in progress.
    pub fn reset(&mut self) {
        self.current = None;
        self.len = 0;
        self.last = false;
        self.compressed = false;
        self.utf8.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: Opcode, payload_len: usize) -> Frame {
        Frame {
            fin,
            rsv: 0,
            opcode,
            mask: None,
            header_len: 2,
            payload_len,
        }
    }

    /// Runs one frame through the assembler.
    fn feed(
        a: &mut MessageAssembler,
        fin: bool,
        op: Opcode,
        payload: &[u8],
    ) -> Result<Option<Completed>, ProtocolError> {
        let step = a.begin_frame(&frame(fin, op, payload.len()))?;
        if matches!(step, Step::Control(_)) {
            return Ok(None);
        }
        a.payload(payload)?;
        a.end_frame()
    }

    #[test]
    fn a_single_frame_is_a_whole_message() {
        let mut a = MessageAssembler::new(100);
        assert_eq!(
            a.begin_frame(&frame(true, Opcode::Binary, 3)),
            Ok(Step::Data {
                kind: MessageKind::Binary,
                first: true,
                last: true
            })
        );
        a.payload(&[0xff, 0, 1]).unwrap();
        assert_eq!(
            a.end_frame(),
            Ok(Some(Completed {
                kind: MessageKind::Binary,
                len: 3
            }))
        );
        assert_eq!(a.in_progress(), None);
        assert_eq!(
            feed(&mut a, true, Opcode::Text, b"hi"),
            Ok(Some(Completed {
                kind: MessageKind::Text,
                len: 2
            }))
        );
        assert_eq!(MessageKind::Text.opcode(), Opcode::Text);
    }

    #[test]
    fn fragments_with_control_frames_between_them() {
        let mut a = MessageAssembler::new(100);
        assert_eq!(feed(&mut a, false, Opcode::Text, b"fra"), Ok(None));
        assert_eq!(a.in_progress(), Some(MessageKind::Text));
        assert_eq!(
            a.begin_frame(&frame(true, Opcode::Ping, 4)),
            Ok(Step::Control(Opcode::Ping))
        );
        assert_eq!(feed(&mut a, false, Opcode::Continuation, b"gmen"), Ok(None));
        assert_eq!(feed(&mut a, true, Opcode::Pong, b""), Ok(None));
        assert_eq!(
            a.begin_frame(&frame(true, Opcode::Continuation, 2)),
            Ok(Step::Data {
                kind: MessageKind::Text,
                first: false,
                last: true
            })
        );
        a.payload(b"ts").unwrap();
        assert_eq!(
            a.end_frame(),
            Ok(Some(Completed {
                kind: MessageKind::Text,
                len: 9
            }))
        );
        // Empty fragments count too.
        assert_eq!(feed(&mut a, false, Opcode::Binary, b""), Ok(None));
        assert_eq!(feed(&mut a, false, Opcode::Continuation, b""), Ok(None));
        assert_eq!(
            feed(&mut a, true, Opcode::Continuation, b""),
            Ok(Some(Completed {
                kind: MessageKind::Binary,
                len: 0
            }))
        );
    }

    #[test]
    fn fragmentation_rules_are_enforced() {
        let mut a = MessageAssembler::new(100);
        assert_eq!(
            feed(&mut a, true, Opcode::Continuation, b"x"),
            Err(ProtocolError::UnexpectedContinuation)
        );
        assert_eq!(
            feed(&mut a, false, Opcode::Continuation, b"x"),
            Err(ProtocolError::UnexpectedContinuation)
        );
        let mut a = MessageAssembler::new(100);
        feed(&mut a, false, Opcode::Binary, b"x").unwrap();
        assert_eq!(
            feed(&mut a, true, Opcode::Text, b"x"),
            Err(ProtocolError::ExpectedContinuation)
        );
        let mut a = MessageAssembler::new(100);
        feed(&mut a, false, Opcode::Text, b"x").unwrap();
        assert_eq!(
            feed(&mut a, false, Opcode::Binary, b"x"),
            Err(ProtocolError::ExpectedContinuation)
        );
    }

    #[test]
    fn the_limit_counts_the_whole_message() {
        let mut a = MessageAssembler::new(10);
        assert!(feed(&mut a, true, Opcode::Binary, &[0; 10]).is_ok());
        feed(&mut a, false, Opcode::Binary, &[0; 6]).unwrap();
        assert_eq!(
            a.begin_frame(&frame(true, Opcode::Continuation, 5)),
            Err(ProtocolError::TooLarge { len: 11, max: 10 })
        );
        // A new message starts counting from zero.
        let mut a = MessageAssembler::new(10);
        feed(&mut a, true, Opcode::Binary, &[0; 8]).unwrap();
        assert!(feed(&mut a, true, Opcode::Binary, &[0; 8]).is_ok());
        // Declared lengths near usize::MAX do not overflow.
        let mut a = MessageAssembler::new(usize::MAX);
        a.begin_frame(&frame(false, Opcode::Binary, usize::MAX))
            .unwrap();
        assert!(matches!(
            a.begin_frame(&frame(true, Opcode::Continuation, 1)),
            Err(ProtocolError::TooLarge { .. })
        ));
    }

    #[test]
    fn text_is_validated_across_fragments() {
        let euro = "€".as_bytes(); // E2 82 AC
        let mut a = MessageAssembler::new(100);
        feed(&mut a, false, Opcode::Text, &euro[..1]).unwrap();
        feed(&mut a, false, Opcode::Continuation, &euro[1..2]).unwrap();
        assert_eq!(
            feed(&mut a, true, Opcode::Continuation, &euro[2..]),
            Ok(Some(Completed {
                kind: MessageKind::Text,
                len: 3
            }))
        );
        // A message may not end inside a character...
        feed(&mut a, false, Opcode::Text, &euro[..1]).unwrap();
        assert_eq!(
            feed(&mut a, true, Opcode::Continuation, &euro[1..2]),
            Err(ProtocolError::InvalidUtf8)
        );
        // ...and bad bytes fail in the fragment that carries them, before the message ends.
        let mut a = MessageAssembler::new(100);
        feed(&mut a, false, Opcode::Text, b"ok").unwrap();
        assert_eq!(
            feed(&mut a, false, Opcode::Continuation, b"\xc0\xaf"),
            Err(ProtocolError::InvalidUtf8)
        );
        // Binary messages are not looked at.
        let mut a = MessageAssembler::new(100);
        assert!(feed(&mut a, true, Opcode::Binary, b"\xff\xfe").is_ok());
    }

    #[test]
    fn rsv1_marks_a_compressed_message_on_its_first_frame_only() {
        let rsv1 = |fin, op, len| Frame { rsv: crate::codec::deflate::RSV1, ..frame(fin, op, len) };
        let mut a = MessageAssembler::new(100);
        a.begin_frame(&rsv1(false, Opcode::Text, 2)).unwrap();
        assert!(a.is_compressed());
        // Compressed bytes are not text; what they inflate to is.
        a.payload(b"\xff\xfe").unwrap();
        a.inflated(b"ok").unwrap();
        assert_eq!(a.begin_frame(&rsv1(true, Opcode::Continuation, 1)), Err(ProtocolError::ReservedBits(4)));
        let mut a = MessageAssembler::new(100);
        assert_eq!(a.begin_frame(&rsv1(true, Opcode::Ping, 0)), Err(ProtocolError::ReservedBits(4)));
        let other = Frame { rsv: 0b010, ..frame(true, Opcode::Text, 1) };
        assert_eq!(a.begin_frame(&other), Err(ProtocolError::ReservedBits(2)));
        a.begin_frame(&rsv1(false, Opcode::Text, 1)).unwrap();
        a.inflated(b"\xc0\xaf").unwrap_err();
        // The next message starts uncompressed unless it says otherwise.
        a.reset();
        a.begin_frame(&frame(true, Opcode::Text, 1)).unwrap();
        assert!(!a.is_compressed());
        assert_eq!(a.payload(b"\xff"), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn a_new_text_message_does_not_inherit_a_half_character() {
        let mut a = MessageAssembler::new(100);
        feed(&mut a, false, Opcode::Text, b"\xe2").unwrap();
        a.reset();
        assert_eq!(
            feed(&mut a, true, Opcode::Text, b"abc"),
            Ok(Some(Completed {
                kind: MessageKind::Text,
                len: 3
            }))
        );
    }
}
