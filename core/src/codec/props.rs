//! Property tests of the codec as a whole: what holds for every frame, split and byte string,
//! not only for the examples in each module's unit tests.

use proptest::collection::vec;
use proptest::prelude::*;

use super::frame::{parse, Frame, Opcode, Parsed};
use super::mask::{apply, apply_at, apply_bytewise};
use super::message::{Completed, MessageAssembler, MessageKind, Step};
use super::utf8::Utf8Validator;
use super::{write, ProtocolError, Role, MAX_HEADER_LEN};

const LIMIT: usize = 1 << 20;

/// A frame as a test describes it: header fields and the unmasked payload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TestFrame {
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

impl TestFrame {
    /// The frame on the wire: header, then the payload masked with the frame's key.
    fn encode_into(&self, wire: &mut Vec<u8>) {
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = write::header(
            &mut head,
            self.fin,
            self.opcode,
            self.payload.len(),
            self.mask,
        );
        wire.extend_from_slice(&head[..n]);
        let start = wire.len();
        wire.extend_from_slice(&self.payload);
        if let Some(key) = self.mask {
            apply(&mut wire[start..], key);
        }
    }

    /// Reads back a parsed frame and its (still masked) bytes.
    fn decode(frame: &Frame, bytes: &[u8]) -> Self {
        let mut payload = bytes[frame.payload_range()].to_vec();
        if let Some(key) = frame.mask {
            apply(&mut payload, key);
        }
        Self {
            fin: frame.fin,
            opcode: frame.opcode,
            mask: frame.mask,
            payload,
        }
    }
}

/// Payload lengths that cover all three length encodings, short ones most often.
fn payload_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..=130,
        2 => 126usize..=1024,
        1 => 65_530usize..=65_600,
    ]
}

/// Valid frames of one role: a client's are masked, a server's are not.
fn frame_of(masked: bool) -> impl Strategy<Value = TestFrame> {
    let data = (
        any::<bool>(),
        prop_oneof![
            Just(Opcode::Continuation),
            Just(Opcode::Text),
            Just(Opcode::Binary)
        ],
        payload_len(),
    );
    let control = (
        Just(true),
        prop_oneof![Just(Opcode::Close), Just(Opcode::Ping), Just(Opcode::Pong)],
        0usize..=125,
    );
    (
        prop_oneof![3 => data, 1 => control],
        any::<[u8; 4]>(),
        any::<u8>(),
    )
        .prop_map(move |((fin, opcode, len), key, seed)| TestFrame {
            fin,
            opcode,
            mask: masked.then_some(key),
            payload: (0..len)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect(),
        })
}

/// The role that receives frames of this kind.
fn receiver(masked: bool) -> Role {
    if masked {
        Role::Server
    } else {
        Role::Client
    }
}

/// Parses a stream fed in pieces, the way a connection reads it: append what arrives, take
/// every whole frame off the front, keep the rest. Also checks what `Incomplete` promises.
fn parse_in_pieces(stream: &[u8], cuts: &[usize], role: Role) -> Vec<TestFrame> {
    let mut buffered = Vec::new();
    let mut frames = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let cut = cut.clamp(start, stream.len());
        buffered.extend_from_slice(&stream[start..cut]);
        start = cut;
        loop {
            match parse(&buffered, role, LIMIT).expect("valid frames parse") {
                Parsed::Incomplete(needed) => {
                    assert!(
                        needed > buffered.len(),
                        "asked for {needed} with {}",
                        buffered.len()
                    );
                    break;
                }
                Parsed::Frame(f) => {
                    frames.push(TestFrame::decode(&f, &buffered));
                    buffered.drain(..f.len());
                }
            }
        }
    }
    assert!(buffered.is_empty(), "{} bytes left over", buffered.len());
    frames
}

/// Bytes that are often valid UTF-8, often nearly so, and sometimes anything at all.
fn utf8ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => any::<String>().prop_map(String::into_bytes),
        2 => vec(any::<u8>(), 0..6),
        1 => vec(prop_oneof![0x80u8..=0xBF, 0xC0u8..=0xC2, 0xE0u8..=0xF5, Just(0xED)], 0..6),
    ];
    vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

/// Feeds `bytes` to a fresh validator split at `cuts` (sorted, in range); true if valid.
fn validate_in_pieces(bytes: &[u8], cuts: &[usize]) -> bool {
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

fn sorted_cuts(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw.iter().map(|c| c % (len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frames_round_trip_through_write_and_parse(masked in any::<bool>(), sent in frame_of(false), key in any::<[u8; 4]>()) {
        let sent = TestFrame { mask: masked.then_some(key), ..sent };
        let mut wire = Vec::new();
        sent.encode_into(&mut wire);
        let parsed = match parse(&wire, receiver(masked), LIMIT) {
            Ok(Parsed::Frame(f)) => f,
            other => panic!("{other:?}"),
        };
        prop_assert_eq!(parsed.len(), wire.len());
        prop_assert_eq!(parsed.header_len, write::header_len(sent.payload.len(), masked));
        prop_assert_eq!(parsed.rsv, 0);
        prop_assert_eq!(TestFrame::decode(&parsed, &wire), sent);
        // The other role refuses it for its masking.
        let refused = parse(&wire, receiver(!masked), LIMIT);
        prop_assert!(matches!(refused, Err(ProtocolError::MaskedFrame | ProtocolError::UnmaskedFrame)));
    }

    #[test]
    fn any_split_of_a_stream_gives_the_same_frames(
        masked in any::<bool>(),
        frames in vec(frame_of(true), 1..12),
        raw_cuts in vec(any::<usize>(), 0..20),
    ) {
        let frames: Vec<TestFrame> = frames
            .into_iter()
            .map(|f| TestFrame { mask: if masked { f.mask } else { None }, ..f })
            .collect();
        let mut stream = Vec::new();
        for f in &frames {
            f.encode_into(&mut stream);
        }
        let cuts = sorted_cuts(stream.len(), &raw_cuts);
        let role = receiver(masked);
        prop_assert_eq!(&parse_in_pieces(&stream, &[], role), &frames);
        prop_assert_eq!(&parse_in_pieces(&stream, &cuts, role), &frames);
    }

    #[test]
    fn masking_is_an_involution_and_matches_the_bytewise_reference(
        data in vec(any::<u8>(), 0..300),
        key in any::<[u8; 4]>(),
        start in 0usize..16,
        offset in 0usize..8,
    ) {
        let start = start.min(data.len());
        let mut fast = data.clone();
        let mut slow = data.clone();
        apply_at(&mut fast[start..], key, offset);
        apply_bytewise(&mut slow[start..], key, offset);
        prop_assert_eq!(&fast, &slow);
        apply_at(&mut fast[start..], key, offset);
        prop_assert_eq!(&fast, &data);
    }

    #[test]
    fn the_streaming_validator_agrees_with_std(bytes in utf8ish(), raw_cuts in vec(any::<usize>(), 0..6)) {
        let expected = std::str::from_utf8(&bytes).is_ok();
        prop_assert_eq!(validate_in_pieces(&bytes, &[]), expected);
        prop_assert_eq!(validate_in_pieces(&bytes, &sorted_cuts(bytes.len(), &raw_cuts)), expected);
        let every: Vec<usize> = (0..=bytes.len()).collect();
        prop_assert_eq!(validate_in_pieces(&bytes, &every), expected);
    }

    #[test]
    fn a_fragmented_text_message_is_valid_exactly_when_its_bytes_are(
        bytes in utf8ish(),
        raw_cuts in vec(any::<usize>(), 0..5),
    ) {
        let cuts = sorted_cuts(bytes.len(), &raw_cuts);
        let mut a = MessageAssembler::new(LIMIT);
        let mut start = 0;
        let mut outcome = Ok(None);
        let ends: Vec<usize> = cuts.iter().copied().chain(std::iter::once(bytes.len())).collect();
        for (i, &end) in ends.iter().enumerate() {
            let piece = &bytes[start..end];
            let frame = Frame {
                fin: i + 1 == ends.len(),
                rsv: 0,
                opcode: if i == 0 { Opcode::Text } else { Opcode::Continuation },
                mask: None,
                header_len: 2,
                payload_len: piece.len(),
            };
            let step = a.begin_frame(&frame).expect("fragments in order");
            let is_text = matches!(step, Step::Data { kind: MessageKind::Text, .. });
            prop_assert!(is_text, "{:?}", step);
            outcome = a.payload(piece).and_then(|()| a.end_frame());
            if outcome.is_err() {
                break;
            }
            start = end;
        }
        match outcome {
            Ok(done) => {
                prop_assert!(std::str::from_utf8(&bytes).is_ok());
                prop_assert_eq!(done, Some(Completed { kind: MessageKind::Text, len: bytes.len() }));
            }
            Err(e) => {
                prop_assert_eq!(e, ProtocolError::InvalidUtf8);
                prop_assert!(std::str::from_utf8(&bytes).is_err());
            }
        }
    }
}
