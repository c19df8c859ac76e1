//! `wsbench-loadgen --autobahn ADDR`: the zero-alloc client's pieces run against an Autobahn
//! fuzzing server (`kosoku -m fuzzingserver`, or wstest), so the client side of the codec is
//! conformance-tested the way the server engines are.
//!
//! The protocol is Autobahn|Testsuite's client-testing one: `GET /getCaseCount` answers the
//! number of cases as one text message; for each case N in 1..=count the client connects to
//! `/runCase?case=N&agent=AGENT` and echoes every message (same type), answers pings, and does
//! the close handshake; `/updateReports?agent=AGENT` ends the run and has the server write its
//! report. The verdicts are the server's: this mode only says whether every case ran.
//!
//! It uses what the zero-alloc load generator uses: the handshake request and response check
//! of [`crate::zero`], and wsbench-core's codec for everything on the wire (header parsing,
//! the message assembler with incremental UTF-8 validation, close payloads and codes, header
//! writing, masking with a fresh key per frame). The socket is a blocking `std::net::TcpStream`
//! and buffers grow as messages need: this mode tests conformance, not allocation.
//!
//! With `--autobahn-deflate` every connection offers permessage-deflate (RFC 7692, wsbench-core's
//! `deflate`: the load generator's offer plus `client_no_context_takeover`), for Autobahn's
//! cases 12.* and 13.*; compressed messages are gathered, inflated whole, and echoed compressed.
//!
//! [`Echo`] is the connection's state machine, without I/O: bytes in, bytes out. Data frame
//! payloads are validated as they arrive (not once the whole frame is buffered), so invalid
//! UTF-8 fails the connection as soon as it is read (Autobahn's "fail fast" cases 6.4.*).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use wsbench_core::clock::now_ns;
use wsbench_core::codec::close::{self, code};
use wsbench_core::codec::deflate::{self, Agreement, DeflateConfig, Deflater, Inflater, RSV1};
use wsbench_core::codec::frame::{self, Frame};
use wsbench_core::codec::{mask, write, MessageAssembler, Opcode, Parsed, ProtocolError, Role, Step, MAX_HEADER_LEN};
use wsbench_core::plan::DEFAULT_MAX_MESSAGE_SIZE;

use crate::zero::{check_response_with, handshake_request, XorShift};
use crate::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

/// Largest message echoed: the server's default limit, which Autobahn's 9.* cases reach
/// (16 MiB) but do not pass.
pub const MAX_MESSAGE: usize = DEFAULT_MAX_MESSAGE_SIZE as usize;
/// Longest wait for the next bytes while a case is open (9.* cases move 16 MiB messages).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// After the close handshake (or our error close), how long the server has to close TCP.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 << 10;

/// Runs every case of the fuzzing server at `addr` (`host:port`) as `agent`, then has it
/// update its reports. Exit code 0 when every case ran (whatever the verdicts), 1 when the
/// server is unreachable or a case could not be run, 2 for a malformed address or agent.
pub fn run_main(addr: &str, agent: &str, deflate: bool) -> ExitCode {
    if let Err(e) = check_target(addr, agent) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    // client_no_context_takeover in the offer: Autobahn's fuzzing server asks for no context
    // takeover (cases 13.2, 13.5, 13.6) only from a client that offers it; we then reset our
    // compressor after every message, which any server can inflate.
    let deflate = deflate.then(|| DeflateConfig { client_no_context_takeover: true, ..DeflateConfig::default() });
    match run(addr, agent, deflate.as_ref()) {
        Ok(count) => {
            println!("autobahn: ran {count} cases against {addr} as {agent}; reports updated");
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `addr` must be `host:port`; the agent name goes into URLs and report file names, so it is
/// kept to letters, digits, `.`, `_` and `-`.
fn check_target(addr: &str, agent: &str) -> Result<(), String> {
    let port_ok = addr.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
    if !port_ok || addr.contains('/') {
        return Err(format!("--autobahn `{addr}` must be host:port, e.g. 127.0.0.1:9001"));
    }
    if agent.is_empty() || !agent.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(format!("--agent `{agent}` may only hold letters, digits, `.`, `_` and `-`"));
    }
    Ok(())
}

/// The whole run; returns the number of cases.
fn run(addr: &str, agent: &str, deflate: Option<&DeflateConfig>) -> Result<u32, String> {
    let mut rng = XorShift::seeded(now_ns());
    let count = {
        let mut conn = Echo::new(MAX_MESSAGE, XorShift::seeded(0));
        conn.echo = false;
        session(addr, "/getCaseCount", &mut conn, &mut rng, None).map_err(|e| format!("cannot get the case count from the fuzzing server at {addr}: {e}"))?;
        let text = conn.received.first().ok_or_else(|| format!("the fuzzing server at {addr} sent no case count"))?;
        let text = std::str::from_utf8(text).unwrap_or("").trim();
        text.parse::<u32>().map_err(|_| format!("the fuzzing server at {addr} sent `{text}` as the case count"))?
    };
    let mut failed = Vec::new();
    for case in 1..=count {
        let mut conn = Echo::new(MAX_MESSAGE, XorShift::seeded(u64::from(case)));
        let path = format!("/runCase?case={case}&agent={agent}");
        if let Err(e) = session(addr, &path, &mut conn, &mut rng, deflate) {
            eprintln!("autobahn: case {case}: {e}");
            failed.push(case);
        }
    }
    let mut conn = Echo::new(MAX_MESSAGE, XorShift::seeded(u64::from(count) + 1));
    session(addr, &format!("/updateReports?agent={agent}"), &mut conn, &mut rng, None).map_err(|e| format!("cannot update the reports at {addr}: {e}"))?;
    if !failed.is_empty() {
        return Err(format!("{} of {count} cases could not be run: {failed:?}", failed.len()));
    }
    Ok(count)
}

/// One connection: handshake on `path`, then [`Echo`] until the server closes TCP. `Err` only
/// when the case could not be run at all (no connection, failed handshake); how the connection
/// ended is the server's to judge.
fn session(addr: &str, path: &str, conn: &mut Echo, rng: &mut XorShift, deflate: Option<&DeflateConfig>) -> Result<(), String> {
    let mut tcp = TcpStream::connect(addr).map_err(|e| format!("cannot connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
    tcp.set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| format!("cannot set a read timeout: {e}"))?;
    let offer = deflate.map(deflate::offer);
    let (request, key) = handshake_request(addr, path, &[], None, offer.as_deref(), rng);
    tcp.write_all(request.as_bytes()).map_err(|e| format!("handshake failed: {e}"))?;

    let mut buf = vec![0u8; READ_CHUNK];
    let mut have = 0;
    let head_len = loop {
        if have == buf.len() {
            return Err(format!("handshake failed: response head longer than {have} bytes"));
        }
        let n = tcp.read(&mut buf[have..]).map_err(|e| format!("handshake failed: {e}"))?;
        if n == 0 {
            return Err("handshake failed: the server closed the connection".into());
        }
        have += n;
        if let Some((len, _, agreed)) = check_response_with(&buf[..have], &key, &[], deflate).map_err(|e| format!("handshake failed: {e}"))? {
            if let Some(a) = agreed {
                conn.compress(&a);
            }
            break len;
        }
    };
    conn.receive(&buf[head_len..have]);

    let mut closing_since: Option<Instant> = None;
    loop {
        let out = conn.take_output();
        if !out.is_empty() && tcp.write_all(&out).is_err() {
            // The server has gone; nothing more to do on this connection.
            return Ok(());
        }
        if conn.is_closing() {
            let since = *closing_since.get_or_insert_with(Instant::now);
            // Wait for the server to close TCP (RFC 6455 section 7.1.1: the server closes first).
            let left = CLOSE_TIMEOUT.saturating_sub(since.elapsed());
            if left.is_zero() {
                return Ok(());
            }
            let _ = tcp.set_read_timeout(Some(left));
        }
        match tcp.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => conn.receive(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Timeout or reset: the connection is over, one way or the other.
            Err(_) => return Ok(()),
        }
    }
}

/// Where the connection is in its close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// We sent a close (an echo of the server's, or one failing the connection): everything
    /// more the server sends is ignored until it closes TCP.
    Closing,
}

/// The echoing client connection as a state machine: [`receive`](Self::receive) takes bytes
/// from the server, [`take_output`](Self::take_output) gives the bytes to send back.
pub(crate) struct Echo {
    /// Unparsed bytes from the server.
    rbuf: Vec<u8>,
    /// The data frame whose payload is arriving, and how many of its bytes are still to come.
    frame: Option<(Frame, usize)>,
    assembler: MessageAssembler,
    max_message: usize,
    /// The message in progress, gathered over its frames.
    message: Vec<u8>,
    /// Masked frames to send.
    out: Vec<u8>,
    rng: XorShift,
    state: State,
    /// Echo messages (a case) or keep them in `received` (the case count).
    echo: bool,
    received: Vec<Vec<u8>>,
    /// The close code we sent, for tests and messages.
    sent_close: Option<u16>,
    /// permessage-deflate, once negotiated.
    compression: Option<(Inflater, Deflater)>,
}

impl Echo {
    pub(crate) fn new(max_message: usize, rng: XorShift) -> Self {
        Self {
            rbuf: Vec::new(),
            frame: None,
            assembler: MessageAssembler::new(max_message),
            max_message,
            message: Vec::new(),
            out: Vec::new(),
            rng,
            state: State::Open,
            echo: true,
            received: Vec::new(),
            sent_close: None,
            compression: None,
        }
    }

    /// permessage-deflate was negotiated with `agreed`: compressed messages are accepted and
    /// every echo is compressed.
    pub(crate) fn compress(&mut self, agreed: &Agreement) {
        self.compression = Some((
            Inflater::new(agreed.server_max_window_bits, agreed.server_no_context_takeover, self.max_message),
            Deflater::new(agreed.client_max_window_bits, agreed.client_no_context_takeover, 6),
        ));
    }

    /// True once we have sent a close frame: the connection only waits for TCP to end.
    pub(crate) fn is_closing(&self) -> bool {
        self.state == State::Closing
    }

    /// The bytes to send now (whole, masked frames).
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Takes bytes from the server and handles every frame (or part of a data frame's payload)
    /// they complete.
    pub(crate) fn receive(&mut self, bytes: &[u8]) {
        if self.state == State::Closing {
            return;
        }
        self.rbuf.extend_from_slice(bytes);
        let mut at = 0;
        let result = loop {
            match self.step(&mut at) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
            if self.state == State::Closing {
                break Ok(());
            }
        };
        self.rbuf.drain(..at);
        if let Err(e) = result {
            self.fail(e);
        }
    }

    /// Handles what `rbuf[*at..]` holds next; `Ok(false)` when it needs more bytes.
    fn step(&mut self, at: &mut usize) -> Result<bool, ProtocolError> {
        let buf = &self.rbuf[*at..];
        if let Some((f, left)) = self.frame {
            // Payload of the current data frame: validated and kept as it arrives.
            let n = left.min(buf.len());
            if n == 0 && left > 0 {
                return Ok(false);
            }
            let piece = &buf[..n];
            self.assembler.payload(piece)?;
            self.message.extend_from_slice(piece);
            *at += n;
            let left = left - n;
            if left > 0 {
                self.frame = Some((f, left));
                return Ok(false);
            }
            self.frame = None;
            if self.assembler.is_compressed() && f.fin {
                // The whole compressed message is in `message`: inflate it (bounded by the
                // limit), then the text check and the echo see what it inflates to.
                if let Some((inflater, _)) = &mut self.compression {
                    inflater.begin();
                    inflater.feed(&self.message)?;
                    inflater.finish()?;
                    self.assembler.inflated(inflater.message())?;
                    self.message.clear();
                    self.message.extend_from_slice(inflater.message());
                }
            }
            if let Some(done) = self.assembler.end_frame()? {
                let message = std::mem::take(&mut self.message);
                if self.echo {
                    self.send(done.kind.opcode(), &message);
                } else {
                    self.received.push(message);
                }
            }
            return Ok(true);
        }
        let rsv = if self.compression.is_some() { RSV1 } else { 0 };
        let f = match frame::parse_header_with(buf, Role::Client, self.max_message, rsv)? {
            Parsed::Incomplete(_) => return Ok(false),
            Parsed::Frame(f) => f,
        };
        match self.assembler.begin_frame(&f)? {
            Step::Data { first, .. } => {
                if first {
                    self.message.clear();
                }
                *at += f.header_len;
                self.frame = Some((f, f.payload_len));
                Ok(true)
            }
            Step::Control(op) => {
                // Control payloads are short (at most 125 bytes): wait for the whole frame.
                if buf.len() < f.len() {
                    return Ok(false);
                }
                let payload = buf[f.payload_range()].to_vec();
                *at += f.len();
                self.control(op, &payload)?;
                Ok(true)
            }
        }
    }

    /// Answers a control frame: a pong for a ping, the close handshake for a close.
    fn control(&mut self, op: Opcode, payload: &[u8]) -> Result<(), ProtocolError> {
        match op {
            Opcode::Ping => self.send(Opcode::Pong, payload),
            Opcode::Close => {
                let received = close::parse(payload)?;
                // Echo the code (RFC 6455 section 5.5.1); a close without one gets 1000.
                self.send_close(received.map_or(code::NORMAL, |c| c.code));
            }
            _ => {}
        }
        Ok(())
    }

    /// Fails the connection with the close code the codec assigns to the violation.
    fn fail(&mut self, e: ProtocolError) {
        self.send_close(e.close_code());
    }

    fn send_close(&mut self, code: u16) {
        let mut payload = [0u8; wsbench_core::codec::MAX_CONTROL_PAYLOAD];
        let n = close::payload(&mut payload, code, "");
        self.send(Opcode::Close, &payload[..n]);
        self.sent_close = Some(code);
        self.state = State::Closing;
    }

    /// Appends one whole frame, masked with a fresh key; a data frame compressed when
    /// permessage-deflate is on.
    fn send(&mut self, opcode: Opcode, payload: &[u8]) {
        let key = self.rng.mask_key();
        let compressed = match &mut self.compression {
            Some((_, deflater)) if !opcode.is_control() => Some(deflater.compress(payload)),
            _ => None,
        };
        let payload = compressed.unwrap_or(payload);
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = write::header(&mut header, true, opcode, payload.len(), Some(key));
        if compressed.is_some() {
            header[0] |= RSV1 << 4;
        }
        self.out.extend_from_slice(&header[..n]);
        let start = self.out.len();
        self.out.extend_from_slice(payload);
        mask::apply(&mut self.out[start..], key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame (unmasked).
    fn server_frame(fin: bool, op: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = write::header(&mut header, fin, op, payload.len(), None);
        let mut v = header[..n].to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn close_frame(code: u16) -> Vec<u8> {
        server_frame(true, Opcode::Close, &code.to_be_bytes())
    }

    /// Parses what the client sent, as a server does: every frame masked, each with its own key.
    fn client_frames(mut out: &[u8]) -> Vec<(Opcode, Vec<u8>)> {
        let mut frames = Vec::new();
        let mut keys = Vec::new();
        while !out.is_empty() {
            let f = match frame::parse(out, Role::Server, usize::MAX >> 1) {
                Ok(Parsed::Frame(f)) => f,
                other => panic!("not a whole client frame: {other:?}"),
            };
            assert!(f.fin);
            let key = f.mask.expect("client frames are masked");
            keys.push(key);
            let mut payload = out[f.payload_range()].to_vec();
            mask::apply(&mut payload, key);
            frames.push((f.opcode, payload));
            out = &out[f.len()..];
        }
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "a fresh mask key per frame");
        frames
    }

    fn echo() -> Echo {
        Echo::new(1 << 20, XorShift::seeded(7))
    }

    fn feed(e: &mut Echo, bytes: &[u8]) -> Vec<(Opcode, Vec<u8>)> {
        e.receive(bytes);
        client_frames(&e.take_output())
    }

    fn closed_with(code: u16) -> (Opcode, Vec<u8>) {
        (Opcode::Close, code.to_be_bytes().to_vec())
    }

    #[test]
    fn messages_are_echoed_with_their_type() {
        let mut e = echo();
        let mut bytes = server_frame(true, Opcode::Text, "κόσμε".as_bytes());
        bytes.extend(server_frame(true, Opcode::Binary, &[0xff, 0, 1]));
        bytes.extend(server_frame(true, Opcode::Text, b""));
        assert_eq!(
            feed(&mut e, &bytes),
            [(Opcode::Text, "κόσμε".as_bytes().to_vec()), (Opcode::Binary, vec![0xff, 0, 1]), (Opcode::Text, vec![])]
        );
        assert!(!e.is_closing());
    }

    #[test]
    fn fragmented_text_with_a_ping_between_fragments() {
        let mut e = echo();
        let mut bytes = server_frame(false, Opcode::Text, b"frag");
        bytes.extend(server_frame(true, Opcode::Ping, b"hey"));
        bytes.extend(server_frame(false, Opcode::Continuation, "€".as_bytes()));
        bytes.extend(server_frame(true, Opcode::Continuation, b"ment"));
        // Split at every byte: the answer is the same however the reads fall.
        for cut in 0..bytes.len() {
            let mut e2 = echo();
            let mut got = feed(&mut e2, &bytes[..cut]);
            got.extend(feed(&mut e2, &bytes[cut..]));
            assert_eq!(got, [(Opcode::Pong, b"hey".to_vec()), (Opcode::Text, "frag€ment".as_bytes().to_vec())], "cut {cut}");
        }
        // Byte by byte.
        let mut got = Vec::new();
        for b in &bytes {
            got.extend(feed(&mut e, std::slice::from_ref(b)));
        }
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn the_close_handshake_echoes_the_code() {
        let mut e = echo();
        let mut bytes = close_frame(3000);
        bytes.extend(server_frame(true, Opcode::Text, b"ignored after close"));
        assert_eq!(feed(&mut e, &bytes), [closed_with(3000)]);
        assert!(e.is_closing());
        assert!(feed(&mut e, &server_frame(true, Opcode::Ping, b"")).is_empty());
        // No code: answered with 1000.
        let mut e = echo();
        assert_eq!(feed(&mut e, &server_frame(true, Opcode::Close, b"")), [closed_with(1000)]);
    }

    #[test]
    fn invalid_utf8_fails_fast_with_1007() {
        let mut e = echo();
        // A 100-byte text frame whose first bytes are already invalid: refused before the rest.
        let mut bytes = server_frame(true, Opcode::Text, &[b'a'; 100]);
        bytes[2..6].copy_from_slice(b"\xce\xba\xed\xa0");
        assert_eq!(feed(&mut e, &bytes[..10]), [closed_with(1007)]);
        assert_eq!(e.sent_close, Some(1007));
        // Across fragments, and at the end of a message.
        let mut e = echo();
        let mut bytes = server_frame(false, Opcode::Text, b"ok");
        bytes.extend(server_frame(true, Opcode::Continuation, b"\xe2\x82"));
        assert_eq!(feed(&mut e, &bytes), [closed_with(1007)]);
        // A close reason that is not UTF-8.
        let mut e = echo();
        assert_eq!(feed(&mut e, &server_frame(true, Opcode::Close, b"\x03\xe8\xff")), [closed_with(1007)]);
    }

    #[test]
    fn protocol_errors_fail_with_1002() {
        let cases: Vec<Vec<u8>> = vec![
            // A masked frame from the server.
            vec![0x81, 0x81, 1, 2, 3, 4, b'x' ^ 1],
            // Reserved bits, reserved opcode.
            vec![0xC1, 0x00],
            vec![0x83, 0x00],
            // A fragmented ping, a 126-byte ping.
            vec![0x09, 0x00],
            vec![0x89, 126, 0, 126],
            // A continuation without a message, a new message inside a fragmented one.
            server_frame(true, Opcode::Continuation, b"x"),
            [server_frame(false, Opcode::Text, b"a"), server_frame(true, Opcode::Text, b"b")].concat(),
            // Close codes that may not be sent, a 1-byte close payload.
            close_frame(1005),
            close_frame(999),
            server_frame(true, Opcode::Close, &[3]),
        ];
        for bytes in cases {
            let mut e = echo();
            assert_eq!(feed(&mut e, &bytes), [closed_with(1002)], "{bytes:x?}");
        }
    }

    #[test]
    fn valid_frames_before_an_error_are_answered_first() {
        let mut e = echo();
        let mut bytes = server_frame(true, Opcode::Text, b"hi");
        bytes.extend([0xF1, 0x00]);
        bytes.extend(server_frame(true, Opcode::Ping, b""));
        assert_eq!(feed(&mut e, &bytes), [(Opcode::Text, b"hi".to_vec()), closed_with(1002)]);
    }

    #[test]
    fn messages_over_the_limit_fail_with_1009() {
        let mut e = Echo::new(10, XorShift::seeded(1));
        assert_eq!(feed(&mut e, &server_frame(true, Opcode::Binary, &[0; 10])), [(Opcode::Binary, vec![0; 10])]);
        let mut bytes = server_frame(false, Opcode::Binary, &[0; 6]);
        bytes.extend(server_frame(true, Opcode::Continuation, &[0; 5]));
        assert_eq!(feed(&mut e, &bytes), [closed_with(1009)]);
    }

    #[test]
    fn sixteen_mib_messages_are_echoed() {
        let mut e = Echo::new(MAX_MESSAGE, XorShift::seeded(3));
        let payload: Vec<u8> = (0..MAX_MESSAGE).map(|i| (i % 251) as u8).collect();
        let bytes = server_frame(true, Opcode::Binary, &payload);
        for chunk in bytes.chunks(READ_CHUNK) {
            e.receive(chunk);
        }
        let got = client_frames(&e.take_output());
        assert_eq!(got.len(), 1);
        assert!(got[0].1 == payload);
    }

    #[test]
    fn the_case_count_is_kept_not_echoed() {
        let mut e = echo();
        e.echo = false;
        assert!(feed(&mut e, &server_frame(true, Opcode::Text, b"301")).is_empty());
        assert_eq!(e.received, [b"301".to_vec()]);
    }

    #[test]
    fn targets_are_checked() {
        assert!(check_target("127.0.0.1:9001", "wsbench-zero-alloc").is_ok());
        assert!(check_target("[::1]:9001", "a.b_c").is_ok());
        for addr in ["127.0.0.1", "127.0.0.1:0", ":9001", "127.0.0.1:x", "ws://127.0.0.1:9001/"] {
            assert!(check_target(addr, "a").unwrap_err().contains("host:port"), "{addr}");
        }
        for agent in ["", "a b", "a&b=c", "a/b"] {
            assert!(check_target("127.0.0.1:9001", agent).unwrap_err().contains("--agent"), "{agent}");
        }
    }

    #[test]
    fn an_unreachable_server_is_one_line_error() {
        // A port that was free a moment ago: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = run(&format!("127.0.0.1:{port}"), "t", None).unwrap_err();
        assert!(e.contains("cannot get the case count") && !e.contains('\n'), "{e}");
    }
}
