//! permessage-deflate (RFC 7692) on `wsbench-server --engine zero-alloc --deflate`, from outside.
//!
//! A raw client on 127.0.0.1 offers the extension, compresses with wsbench-core's deflate
//! state (an independent peer is Python's websockets, below, and Autobahn's cases 12 and 13 in
//! `conformance/run.sh`), and checks what users see: the negotiated parameters in the `101`
//! answer, echoes byte for byte, `server.json`'s allocations and compression counts, the close
//! code of a deflate bomb and the server's memory after it. Every wait has a timeout and every
//! loop a bound; nothing asserts on speed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use wsbench_core::clock::now_ns;
use wsbench_core::codec::deflate::{Deflater, Inflater, RSV1};
use wsbench_core::codec::frame::{parse_with, Parsed};
use wsbench_core::codec::{mask, write, Opcode, Role};
use wsbench_core::header::{fill_payload, MessageHeader};
use wsbench_core::layout::SERVER_SUMMARY;

mod common;

use common::{ServerProcess, BIN, STEP};

/// A client that offers permessage-deflate and speaks raw frames.
struct DeflateClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The server's `Sec-WebSocket-Extensions` answer, if any.
    extensions: Option<String>,
    key: u32,
}

impl DeflateClient {
    async fn connect(addr: SocketAddr, offer: Option<&str>) -> Self {
        let mut stream = timeout(STEP, TcpStream::connect(addr)).await.expect("in time").expect("connect");
        let offer = offer.map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n")).unwrap_or_default();
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send upgrade");
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = timeout(STEP, stream.read(&mut chunk)).await.expect("answer in time").expect("read");
            assert_ne!(n, 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        let extensions = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions").then(|| value.trim().to_owned())
        });
        buf.drain(..end);
        Self { stream, buf, extensions, key: 0x1234_5678 }
    }

    /// One masked frame; `rsv1` marks a compressed message's first frame.
    fn frame(&mut self, fin: bool, rsv1: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        self.key = self.key.rotate_left(7) ^ 0x9e37_79b9;
        let key = self.key.to_be_bytes();
        let mut head = [0u8; 14];
        let n = write::header(&mut head, fin, opcode, payload.len(), Some(key));
        if rsv1 {
            head[0] |= RSV1 << 4;
        }
        let mut frame = head[..n].to_vec();
        let start = frame.len();
        frame.extend_from_slice(payload);
        mask::apply(&mut frame[start..], key);
        frame
    }

    async fn send(&mut self, bytes: &[u8]) {
        timeout(STEP, self.stream.write_all(bytes)).await.expect("in time").expect("send");
    }

    /// The next frame: RSV1, opcode bits, FIN, payload; `None` at end of stream.
    async fn next(&mut self) -> Option<(bool, u8, bool, Vec<u8>)> {
        loop {
            match parse_with(&self.buf, Role::Client, usize::MAX >> 1, RSV1).expect("server frames are valid") {
                Parsed::Frame(f) => {
                    let payload = self.buf[f.payload_range()].to_vec();
                    self.buf.drain(..f.len());
                    return Some((f.rsv & RSV1 != 0, f.opcode.bits(), f.fin, payload));
                }
                Parsed::Incomplete(_) => {
                    let mut chunk = vec![0u8; 64 * 1024];
                    let n = timeout(STEP, self.stream.read(&mut chunk)).await.expect("a frame in time").ok()?;
                    if n == 0 {
                        return None;
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    /// The next message, inflated if compressed: (compressed, opcode bits, payload).
    async fn message(&mut self, inflater: &mut Inflater) -> (bool, u8, Vec<u8>) {
        let (rsv1, op, fin, payload) = self.next().await.expect("a message");
        assert!(fin, "the server echoes whole messages in one frame");
        if !rsv1 {
            return (false, op, payload);
        }
        inflater.begin();
        inflater.feed(&payload).expect("inflates");
        inflater.finish().expect("inflates");
        (true, op, inflater.message().to_vec())
    }
}

fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("deflate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The most resident memory the process ever had (VmHWM), in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

async fn stop(mut server: ServerProcess) {
    server.signal(libc::SIGTERM);
    let status = timeout(STEP, server.child.wait()).await.expect("exit in time").expect("wait");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn offers_are_answered_as_rfc_7692_asks() {
    let server = ServerProcess::start(&[
        "--engine",
        "zero-alloc",
        "--deflate",
        "--deflate-client-max-window-bits",
        "10",
        "--deflate-client-no-context-takeover",
    ])
    .await;
    let cases = [
        (None, None),
        (Some("x-unknown"), None),
        (Some("permessage-deflate"), Some("permessage-deflate; client_no_context_takeover")),
        (
            Some("permessage-deflate; client_max_window_bits; server_max_window_bits=12"),
            Some("permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=10"),
        ),
        (
            Some("permessage-deflate; server_no_context_takeover"),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
        // Unmeetable (zlib has no 8-bit raw window) or malformed offers are declined; the next
        // offer is taken.
        (Some("permessage-deflate; server_max_window_bits=8"), None),
        (Some("permessage-deflate; bogus=1, permessage-deflate; client_max_window_bits=9"), Some("permessage-deflate; client_no_context_takeover; client_max_window_bits=9")),
    ];
    for (offer, answer) in cases {
        let c = DeflateClient::connect(server.addr, offer).await;
        assert_eq!(c.extensions.as_deref(), answer, "offer {offer:?}");
    }
    stop(server).await;

    // The tungstenite engine cannot compress: it declines every offer, and --deflate with it
    // is a usage error.
    let server = ServerProcess::start(&["--engine", "tungstenite"]).await;
    let c = DeflateClient::connect(server.addr, Some("permessage-deflate")).await;
    assert_eq!(c.extensions, None);
    stop(server).await;
    let out = Command::new(BIN).args(["--engine", "tungstenite", "--deflate", "--listen", "127.0.0.1:0"]).stderr(Stdio::piped()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--engine zero-alloc"), "{err}");
}

#[tokio::test]
async fn compressed_messages_of_every_shape_are_echoed() {
    let server = ServerProcess::start(&["--engine", "zero-alloc", "--deflate"]).await;
    let mut c = DeflateClient::connect(server.addr, Some("permessage-deflate; client_max_window_bits")).await;
    assert_eq!(c.extensions.as_deref(), Some("permessage-deflate"));
    let (mut d, mut i) = (Deflater::new(15, false, 6), Inflater::new(15, false, usize::MAX >> 1));
    let text = "wsbench κόσμε €𝄞 ".repeat(500).into_bytes();
    let random: Vec<u8> = (0..200_000u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for (op, msg) in [(Opcode::Text, &text[..]), (Opcode::Binary, &random[..]), (Opcode::Text, b""), (Opcode::Binary, &text[..10])] {
        let wire = d.compress(msg).to_vec();
        let frame = c.frame(true, true, op, &wire);
        c.send(&frame).await;
        let (compressed, got_op, echo) = c.message(&mut i).await;
        assert!(compressed);
        assert_eq!((got_op, echo.as_slice()), (op.bits(), msg), "{} bytes", msg.len());
    }
    // A compressed message in three fragments, cut at arbitrary points, with a ping between.
    let wire = d.compress(&text).to_vec();
    let (a, rest) = wire.split_at(wire.len() / 3);
    let (b, tail) = rest.split_at(rest.len() / 2);
    let mut bytes = c.frame(false, true, Opcode::Text, a);
    bytes.extend(c.frame(true, false, Opcode::Ping, b"between"));
    bytes.extend(c.frame(false, false, Opcode::Continuation, b));
    bytes.extend(c.frame(true, false, Opcode::Continuation, tail));
    // Sent a few bytes at a time, so that frames are cut by reads.
    for piece in bytes.chunks(7) {
        c.send(piece).await;
    }
    let (_, op, _, pong) = c.next().await.unwrap();
    assert_eq!((op, pong.as_slice()), (0xA, &b"between"[..]));
    assert_eq!(c.message(&mut i).await, (true, 0x1, text.clone()));
    // An uncompressed message on a deflate connection is fine too (RSV1 clear).
    let frame = c.frame(true, false, Opcode::Binary, b"plain");
    c.send(&frame).await;
    assert_eq!(c.message(&mut i).await, (false, 0x2, b"plain".to_vec()));
    // Compressed text that inflates to invalid UTF-8 fails with 1007; RSV1 on a continuation
    // or control frame with 1002.
    for (frames, code) in [
        (vec![(true, true, Opcode::Text, d.compress(b"ok \xc0\xaf").to_vec())], 1007u16),
        (vec![(true, true, Opcode::Ping, Vec::new())], 1002),
        (vec![(false, true, Opcode::Binary, d.compress(b"x").to_vec()), (true, true, Opcode::Continuation, Vec::new())], 1002),
        (vec![(true, true, Opcode::Binary, vec![0xff; 20])], 1002),
    ] {
        let mut c = DeflateClient::connect(server.addr, Some("permessage-deflate")).await;
        for (fin, rsv1, op, payload) in frames {
            let f = c.frame(fin, rsv1, op, &payload);
            c.send(&f).await;
        }
        let (_, op, _, payload) = c.next().await.expect("a close frame");
        assert_eq!(op, 0x8);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code);
    }
    // Without the extension negotiated, RSV1 is a protocol error.
    let mut c = DeflateClient::connect(server.addr, None).await;
    let f = c.frame(true, true, Opcode::Binary, d.compress(b"x"));
    c.send(&f).await;
    let (_, op, _, payload) = c.next().await.expect("a close frame");
    assert_eq!((op, u16::from_be_bytes([payload[0], payload[1]])), (0x8, 1002));
    stop(server).await;
}

/// Echoes wsbench messages, compressed both ways, on two connections with several in flight,
/// and reads `server.json`: the runtime thread allocated nothing per message, and the
/// compression counts say what went over the wire. One runtime thread: on a multi-thread
/// runtime a worker's first turn ever creates its shared read buffer (twice per thread, once
/// per server life), and with two connections that turn can fall inside the measured window.
#[tokio::test]
async fn the_compressed_echo_path_allocates_nothing() {
    const CONNECTIONS: u64 = 2;
    const IN_FLIGHT: u64 = 8;
    const PER_CONNECTION: u64 = 40_000;
    const SIZE: usize = 256;
    /// The first messages of each connection are its warm-up (by count, not time: on a quiet
    /// machine the whole load takes under a second).
    const WARMUP: u64 = PER_CONNECTION / 4;
    let out = out_dir("alloc");
    let mut server = ServerProcess::start(&["--engine", "zero-alloc", "--deflate", "--runtime", "current-thread", "--out", out.to_str().unwrap()]).await;
    let addr = server.addr;
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            tokio::spawn(async move {
                let mut c = DeflateClient::connect(addr, Some("permessage-deflate; client_max_window_bits")).await;
                assert!(c.extensions.is_some());
                let (mut d, mut i) = (Deflater::new(15, false, 6), Inflater::new(15, false, 1 << 20));
                let mut seq = 0u64;
                let mut wire = 0usize;
                while seq < PER_CONNECTION {
                    let mut batch = Vec::new();
                    let mut sent = Vec::new();
                    for _ in 0..IN_FLIGHT {
                        let mut m = vec![0u8; SIZE];
                        let now = now_ns();
                        MessageHeader { seq, intended_ns: now, sent_ns: now, warmup: seq < WARMUP }.encode(&mut m);
                        fill_payload(&mut m, seq);
                        seq += 1;
                        let z = d.compress(&m).to_vec();
                        wire += z.len();
                        batch.extend(c.frame(true, true, Opcode::Binary, &z));
                        sent.push(m);
                    }
                    c.send(&batch).await;
                    for m in sent {
                        assert_eq!(c.message(&mut i).await, (true, 0x2, m));
                    }
                }
                let close = c.frame(true, false, Opcode::Close, &1000u16.to_be_bytes());
                c.send(&close).await;
                while c.next().await.is_some() {}
                wire
            })
        })
        .collect();
    let mut wire_in = 0;
    for c in clients {
        wire_in += timeout(std::time::Duration::from_secs(120), c).await.expect("load in time").unwrap();
    }
    server.signal(libc::SIGTERM);
    let status = timeout(STEP, server.child.wait()).await.expect("exit in time").unwrap();
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(out.join(SERVER_SUMMARY)).expect("server.json");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    std::fs::remove_dir_all(&out).ok();
    eprintln!("server.json deflate: {}", v["deflate"]);
    eprintln!("allocations per message: workers {}, process {}", v["worker_allocations_per_message"], v["allocations_per_message"]);
    // Per message: none. Seen once in several runs, only with the machine busy: one allocation
    // in the 60,000 measured messages, a one-time growth that fell after the warm-up (cause not
    // pinned down; see docs/design.md). An allocation per message, or per batch, would be
    // thousands; at most one per connection is let through, and printed above.
    let per_message = v["worker_allocations_per_message"].as_f64().expect("server.json has worker_allocations_per_message");
    let measured = (CONNECTIONS * (PER_CONNECTION - WARMUP)) as f64;
    assert!(per_message * measured <= CONNECTIONS as f64 + 0.5, "the runtime threads allocated {per_message} times per message while echoing compressed messages");
    let d = &v["deflate"];
    assert_eq!(d["negotiated"], CONNECTIONS);
    assert_eq!(d["agreements"][0]["connections"], CONNECTIONS);
    assert_eq!(d["agreements"][0]["server_max_window_bits"], 15);
    let messages = CONNECTIONS * PER_CONNECTION;
    assert_eq!(d["messages_in"], messages);
    assert_eq!(d["messages_out"], messages);
    assert_eq!(d["payload_bytes_in"], messages * SIZE as u64);
    assert_eq!(d["wire_bytes_in"], wire_in as u64);
    let ratio = d["ratio_out"].as_f64().unwrap();
    assert!(ratio > 0.0 && ratio < 1.0, "wsbench's filler compresses: {ratio}");
    assert_eq!(v["config"]["deflate"]["server_max_window_bits"], 15);
}

/// A frame of ~260 KiB that inflates to 256 MiB, against `--max-message-size 1MiB`: closed with
/// 1009 once 1 MiB is inflated, and the server's resident memory does not grow by the bomb.
#[tokio::test]
async fn a_deflate_bomb_is_closed_with_1009_in_bounded_memory() {
    let server = ServerProcess::start(&["--engine", "zero-alloc", "--deflate", "--max-message-size", "1MiB"]).await;
    let mut d = Deflater::new(15, false, 9);
    let bomb = d.compress(&vec![0u8; 256 << 20]).to_vec();
    assert!(bomb.len() < 1 << 20, "the bomb itself fits the limit: {} bytes", bomb.len());
    let before = server.rss_kib();
    let mut c = DeflateClient::connect(server.addr, Some("permessage-deflate")).await;
    let frame = c.frame(true, true, Opcode::Binary, &bomb);
    c.send(&frame).await;
    let (_, op, _, payload) = c.next().await.expect("a close frame");
    assert_eq!((op, u16::from_be_bytes([payload[0], payload[1]])), (0x8, 1009), "{}", String::from_utf8_lossy(&payload[2..]));
    let peak = peak_rss_kib(server.pid);
    eprintln!("server RSS {before} KiB before the bomb, peak {peak} KiB; bomb {} bytes", bomb.len());
    // The frame itself (~260 KiB) and at most 1 MiB of inflated output, with slack for the
    // allocator; far below the 256 MiB it would inflate to.
    assert!(peak < before + 8 * 1024, "peak RSS {peak} KiB against {before} KiB before the bomb");
    // The server goes on serving.
    let mut c = DeflateClient::connect(server.addr, Some("permessage-deflate")).await;
    let mut i = Inflater::new(15, false, 1 << 20);
    let f = c.frame(true, true, Opcode::Text, Deflater::new(15, false, 6).compress(b"still here"));
    c.send(&f).await;
    assert_eq!(c.message(&mut i).await, (true, 0x1, b"still here".to_vec()));
    stop(server).await;
}

/// Python's websockets (an independent implementation) as the client, default offer and a
/// narrowed one: every message comes back whole, with the extension it negotiated.
#[tokio::test]
async fn python_websockets_round_trips_with_compression() {
    let py = std::env::var("WSBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&py).args(["-c", "import websockets"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !has {
        assert!(std::env::var_os("CI").is_none(), "CI must provide Python with the websockets package (set WSBENCH_PYTHON)");
        eprintln!("skipping: `{py}` cannot import websockets (pip install websockets==17.4)");
        return;
    }
    let server = ServerProcess::start(&["--engine", "zero-alloc", "--deflate", "--deflate-server-max-window-bits", "12"]).await;
    let script = r#"
import sys
from websockets.sync.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
url = sys.argv[1]
for factory in [ClientPerMessageDeflateFactory(client_max_window_bits=True),
                ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=11,
                                               server_no_context_takeover=True, client_no_context_takeover=True)]:
    with connect(url, extensions=[factory], compression=None, max_size=None, open_timeout=10) as ws:
        print(ws.response.headers.get("Sec-WebSocket-Extensions"))
        for m in ["", "hello", "κόσμε €" * 3000, b"\x00\x01" * 40000, bytes(range(256)) * 300]:
            ws.send(m)
            assert ws.recv(timeout=10) == m, len(m)
print("ok")
"#;
    let out = tokio::task::spawn_blocking({
        let url = format!("ws://{}/", server.addr);
        move || Command::new(py).args(["-c", script, &url]).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            // Not named: the offer did not name it (RFC 7692 section 7.1.2.1); 12 is used anyway.
            "permessage-deflate",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11",
            "ok"
        ]
    );
    stop(server).await;
}
