//! The real `wsbench-server` binary as the integration tests start it: on 127.0.0.1 port 0,
//! ready once it has printed its listening line. Every await is bounded by [`STEP`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};
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
        let ev = Listening::parse(&line).unwrap_or_else(|| panic!("not a listening line: {line:?}"));
        assert_eq!(ev.pid, child.id().expect("running"));
        let addr: SocketAddr = ev.addr.parse().expect("addr is a socket address");
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        let pid = i32::try_from(ev.pid).expect("pid fits");
        Self { child, stdout, addr, pid }
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on the child we started and still own.
        let rc = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    pub async fn connect(&self) -> Client {
        let (ws, _) = timeout(STEP, connect_async(format!("ws://{}/", self.addr)))
            .await
            .expect("connect in time")
            .expect("WebSocket handshake");
        ws
    }
}
