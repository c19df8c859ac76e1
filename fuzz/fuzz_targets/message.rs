//! The message assembler on a stream of server frames (fragments, control frames between
//! them, close payloads), fed in pieces of every size. Checked against std: a text message is
//! accepted only if it is valid UTF-8, refused as soon as its bytes so far cannot begin valid
//! UTF-8, and close payloads are read as RFC 6455 says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsbench_core::codec::close;
use wsbench_core::codec::utf8::Utf8Validator;
use wsbench_core::codec::{frame, MessageAssembler, MessageKind, Opcode, Parsed, ProtocolError, Role, Step, MAX_CONTROL_PAYLOAD};

const MAX: usize = 1 << 16;

/// Valid UTF-8, or a valid beginning of it that was cut short.
fn valid_prefix(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).map_or_else(|e| e.error_len().is_none(), |_| true)
}

fn close_payload(payload: &[u8]) {
    match close::parse(payload) {
        Ok(None) => assert!(payload.is_empty()),
        Ok(Some(c)) => {
            assert!(close::is_valid_code(c.code));
            assert_eq!(payload[..2], c.code.to_be_bytes());
            assert_eq!(Ok(c.reason), std::str::from_utf8(&payload[2..]));
            let mut out = [0u8; MAX_CONTROL_PAYLOAD];
            let n = close::payload(&mut out, c.code, c.reason);
            assert_eq!(&out[..n], payload, "close payload does not round-trip");
        }
        Err(ProtocolError::CloseTooShort) => assert_eq!(payload.len(), 1),
        Err(ProtocolError::InvalidCloseCode(code)) => assert!(!close::is_valid_code(code)),
        Err(ProtocolError::CloseReasonNotUtf8) => assert!(std::str::from_utf8(&payload[2..]).is_err()),
        Err(e) => panic!("close payload {payload:?}: unexpected {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, wire)) = data.split_first() else { return };
    let piece = usize::from(split % 9) + 1;

    // The incremental validator alone, against std, on the whole input in pieces.
    let mut v = Utf8Validator::new();
    let fed = wire.chunks(piece).try_for_each(|c| v.feed(c));
    assert_eq!(fed.and_then(|_| v.finish()).is_ok(), std::str::from_utf8(wire).is_ok());

    let mut asm = MessageAssembler::new(MAX);
    let mut message: Vec<u8> = Vec::new();
    let mut pos = 0;
    while let Ok(Parsed::Frame(f)) = frame::parse(&wire[pos..], Role::Client, MAX) {
        let payload = &wire[pos + f.header_len..pos + f.len()];
        pos += f.len();
        let before = asm.in_progress();
        let step = match asm.begin_frame(&f) {
            Ok(s) => s,
            Err(ProtocolError::ExpectedContinuation) => {
                assert!(before.is_some() && f.opcode != Opcode::Continuation);
                return;
            }
            Err(ProtocolError::UnexpectedContinuation) => {
                assert!(before.is_none() && f.opcode == Opcode::Continuation);
                return;
            }
            Err(ProtocolError::TooLarge { .. }) => return,
            Err(e) => panic!("begin_frame: unexpected {e:?}"),
        };
        let (kind, first, last) = match step {
            Step::Control(op) => {
                assert_eq!(asm.in_progress(), before, "a control frame changed the message in progress");
                if op == Opcode::Close {
                    close_payload(payload);
                }
                continue;
            }
            Step::Data { kind, first, last } => (kind, first, last),
        };
        assert_eq!(first, before.is_none());
        if first {
            message.clear();
        }
        for p in payload.chunks(piece) {
            message.extend_from_slice(p);
            match asm.payload(p) {
                Ok(()) => assert!(kind == MessageKind::Binary || valid_prefix(&message), "accepted bytes that cannot begin UTF-8"),
                Err(ProtocolError::InvalidUtf8) => {
                    assert!(kind == MessageKind::Text && !valid_prefix(&message), "refused a valid UTF-8 beginning");
                    return;
                }
                Err(e) => panic!("payload: unexpected {e:?}"),
            }
        }
        match asm.end_frame() {
            Ok(Some(done)) => {
                assert!(last);
                assert_eq!((done.kind, done.len), (kind, message.len()));
                assert!(kind == MessageKind::Binary || std::str::from_utf8(&message).is_ok(), "accepted a text message that is not UTF-8");
                assert_eq!(asm.in_progress(), None);
            }
            Ok(None) => assert!(!last),
            Err(ProtocolError::InvalidUtf8) => {
                assert!(last && kind == MessageKind::Text && std::str::from_utf8(&message).is_err());
                return;
            }
            Err(e) => panic!("end_frame: unexpected {e:?}"),
        }
    }
});
