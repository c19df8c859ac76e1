//! The frame parser: arbitrary bytes never panic and `parse` agrees with `parse_header`; a
//! frame encoded by `write::header` (and masked) parses back to exactly what was encoded, and
//! each of its prefixes is `Incomplete` with a need the reader can meet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsbench_core::codec::{frame, mask, write, Frame, Opcode, Parsed, Role, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};

const MAX: usize = 1 << 20;

fn check(f: &Frame, role: Role) {
    assert!((2..=MAX_HEADER_LEN).contains(&f.header_len), "{f:?}");
    assert_eq!(f.rsv, 0);
    assert_eq!(f.mask.is_some(), role.expects_masked(), "{f:?}");
    if f.opcode.is_control() {
        assert!(f.fin && f.payload_len <= MAX_CONTROL_PAYLOAD, "{f:?}");
    } else {
        assert!(f.payload_len <= MAX, "{f:?}");
    }
}

fn arbitrary_bytes(data: &[u8]) {
    for role in [Role::Server, Role::Client] {
        match (frame::parse(data, role, MAX), frame::parse_header(data, role, MAX)) {
            (Ok(Parsed::Frame(f)), Ok(Parsed::Frame(h))) => {
                assert_eq!(f, h);
                assert!(f.len() <= data.len());
                check(&f, role);
            }
            (Ok(Parsed::Incomplete(n)), Ok(Parsed::Frame(h))) => {
                assert!(data.len() < h.len() && n == h.len(), "{n} {h:?} {}", data.len());
                check(&h, role);
            }
            (Ok(Parsed::Incomplete(n)), Ok(Parsed::Incomplete(m))) => {
                // A reader waits for n bytes: n must be more than it has, or it never wakes.
                assert!(n == m && n > data.len(), "{n} {m} {}", data.len());
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("parse {a:?} but parse_header {b:?}"),
        }
    }
}

fn round_trip(data: &[u8]) {
    let [b0, b1, b2, b3, rest @ ..] = data else { return };
    let opcode = [Opcode::Continuation, Opcode::Text, Opcode::Binary, Opcode::Close, Opcode::Ping, Opcode::Pong][usize::from(*b0) % 6];
    let fin = opcode.is_control() || b0 & 0x80 != 0;
    let role = if b0 & 0x40 != 0 { Role::Server } else { Role::Client };
    // Mostly short payloads (fast runs); each length encoding is still reached.
    let raw = usize::from(u16::from_le_bytes([*b1, *b2]));
    let mut len = match b3 >> 6 {
        3 => 65_536 + raw % 4096, // 8-byte length
        2 => raw,                 // up to 2-byte length
        _ => raw % 300,
    };
    if opcode.is_control() {
        len %= MAX_CONTROL_PAYLOAD + 1;
    }
    let key = role.expects_masked().then(|| [b3.wrapping_mul(31), *b1, *b2, b3.wrapping_add(7)]);
    let payload: Vec<u8> = (0..len).map(|i| if rest.is_empty() { i as u8 } else { rest[i % rest.len()] }).collect();

    let mut head = [0u8; MAX_HEADER_LEN];
    let n = write::header(&mut head, fin, opcode, len, key);
    assert_eq!(n, write::header_len(len, key.is_some()));
    let mut wire = head[..n].to_vec();
    let start = wire.len();
    wire.extend_from_slice(&payload);
    if let Some(k) = key {
        mask::apply(&mut wire[start..], k);
    }
    let Ok(Parsed::Frame(f)) = frame::parse(&wire, role, MAX) else { panic!("own frame refused: {:?}", frame::parse(&wire, role, MAX)) };
    assert_eq!((f.fin, f.opcode, f.mask, f.header_len, f.payload_len), (fin, opcode, key, n, len));
    let mut back = wire[f.payload_range()].to_vec();
    if let Some(k) = f.mask {
        mask::apply(&mut back, k);
    }
    assert!(back == payload, "payload differs after unmasking");
    for cut in [0, 1, n - 1, n, wire.len() - 1] {
        if cut < wire.len() {
            match frame::parse(&wire[..cut], role, MAX) {
                Ok(Parsed::Incomplete(need)) => assert!(need > cut && need <= wire.len(), "cut {cut}: need {need} of {}", wire.len()),
                other => panic!("prefix of {cut} bytes: {other:?}"),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    arbitrary_bytes(data);
    round_trip(data);
});
