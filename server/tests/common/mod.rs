//! The real `wsbench-server` binary as the integration tests start it: on 127.0.0.1 port 0,
//! ready once it has printed its listening line. Every await is bounded by [`STEP`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};
use wsbench_core::codec::frame::{parse, Parsed};
use wsbench_core::codec::{close, mask, write, Opcode, Role, MAX_HEADER_LEN};
use wsbench_core::event::Listening;

pub const BIN: &str = env!("CARGO_BIN_EXE_wsbench-server");
/// Bound on any single step that should be quick.
pub const STEP: Duration = Duration::from_secs(10);

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A started server; killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    /// The rest of its stdout, after the listening line (which must stay the only line).
    pub stdout: Lines<BufReader<ChildStdout>>,
    pub addr: SocketAddr,
    pub pid: i32,
}

impl ServerProcess {
    /// Starts `wsbench-server --listen 127.0.0.1:0 ARGS...` and waits for its listening line.
    pub async fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start wsbench-server");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let line = timeout(STEP, stdout.next_line())
            .await
            .expect("readiness line in time")
            .expect("read stdout")
            .expect("a readiness line before stdout closed");
        let ev =
            Listening::parse(&line).unwrap_or_else(|| panic!("not a listening line: {line:?}"));
        assert_eq!(ev.pid, child.id().expect("running"));
        let addr: SocketAddr = ev.addr.parse().expect("addr is a socket address");
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        let pid = i32::try_from(ev.pid).expect("pid fits");
        Self {
            child,
            stdout,
            addr,
            pid,
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on the child we started and still own.
        let rc = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// The value of one metric on `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let mut s = TcpStream::connect(self.addr).await.expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        let mut answer = String::new();
        timeout(STEP, s.read_to_string(&mut answer))
            .await
            .expect("in time")
            .expect("read");
        answer
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{answer}"))
            .trim()
            .parse()
            .expect("a number")
    }

    /// The server's resident memory, in KiB, as the kernel counts it.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub async fn connect(&self) -> Client {
        let (ws, _) = timeout(STEP, connect_async(format!("ws://{}/", self.addr)))
            .await
            .expect("connect in time")
            .expect("WebSocket handshake");
        ws
    }
}

/// A client speaking raw frames over TCP, through wsbench-core's codec.
pub struct RawClient {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl RawClient {
    /// Connects and upgrades; `first` goes out in the same write as the request head.
    pub async fn connect(addr: SocketAddr, first: &[u8]) -> Self {
        let mut stream = timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("in time")
            .expect("connect");
        let mut request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes();
        request.extend_from_slice(first);
        stream.write_all(&request).await.expect("send upgrade");
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = timeout(STEP, stream.read(&mut chunk))
                .await
                .expect("answer in time")
                .expect("read");
            assert_ne!(n, 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        buf.drain(..head_end);
        Self { stream, buf }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// The next frame from the server: opcode bits, FIN and payload.
    pub async fn frame(&mut self) -> Option<(u8, bool, Vec<u8>)> {
        loop {
            match parse(&self.buf, Role::Client, usize::MAX >> 1).expect("server frames are valid")
            {
                Parsed::Frame(f) => {
                    let payload = self.buf[f.payload_range()].to_vec();
                    self.buf.drain(..f.len());
                    return Some((f.opcode.bits(), f.fin, payload));
                }
                Parsed::Incomplete(_) => {
                    let mut chunk = vec![0u8; 64 * 1024];
                    let n = timeout(STEP, self.stream.read(&mut chunk))
                        .await
                        .expect("a frame in time")
                        .ok()?;
                    if n == 0 {
                        return None;
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    /// Expects a close frame with `code`, answers it, and expects the server to end the stream.
    pub async fn expect_close(&mut self, code: u16) {
        let (op, _, payload) = self.frame().await.expect("a close frame");
        assert_eq!(op, Opcode::Close.bits(), "payload {payload:?}");
        let got = close::parse(&payload)
            .expect("a valid close payload")
            .map(|c| c.code);
        assert_eq!(got, Some(code));
        self.send(&client_frame(0x88, &payload[..2])).await;
        assert_eq!(
            self.frame().await,
            None,
            "the server ends the stream after closing"
        );
    }
}

/// A masked client frame whose first byte (FIN, RSV, opcode) is `b0`.
pub fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x5a, 0xc3, 0x01, 0xfe];
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = write::header(&mut head, true, Opcode::Binary, payload.len(), Some(key));
    head[0] = b0;
    let mut frame = head[..n].to_vec();
    let start = frame.len();
    frame.extend_from_slice(payload);
    mask::apply(&mut frame[start..], key);
    frame
}
