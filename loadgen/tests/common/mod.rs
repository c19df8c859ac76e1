//! Helpers for the integration tests: a small echo server inside the test process, and a way
//! to run the real `wsbench-loadgen` binary and read what it wrote.
//!
//! The echo server is deliberately independent of the `wsbench-server` crate: these tests check
//! the load generator against a known, simple peer.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use wsbench_core::hist::{read_interval_log, total, LogInterval};
use wsbench_core::layout::{INTERVALS_CSV, LATENCY_LOG, SEND_LAG_LOG, SERVICE_TIME_LOG, SUMMARY};
use wsbench_core::result::{IntervalRow, LoadgenSummary};

/// Tests that measure take turns: on a 2-core machine two runs at once would measure each other.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The server stops answering for `pause` at the end of every `every` (an emulated GC pause).
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    pub every: Duration,
    pub pause: Duration,
}

/// An echo server on 127.0.0.1:0, running on its own runtime thread.
pub struct EchoServer {
    pub addr: SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
    /// The reason of the close frame 1001 every connection sends once it is set.
    go_away: watch::Sender<Option<String>>,
    /// WebSocket connections open now (handshake done, not yet ended).
    open: Arc<AtomicUsize>,
}

/// Counts a connection open for as long as it lives.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl EchoServer {
    pub fn start(stall: Option<Stall>) -> Self {
        Self::build(stall, None, || {})
    }

    /// Every echo waits `per_message` before it is sent, one message at a time per connection:
    /// the server answers at most `connections / per_message` messages per second.
    pub fn start_slow(per_message: Duration) -> Self {
        Self::build(None, Some(per_message), || {})
    }

    /// Runs `on_thread_start` on each of the server's runtime threads (e.g. to exempt them from
    /// allocation counting).
    pub fn start_with(on_thread_start: impl Fn() + Send + Sync + 'static) -> Self {
        Self::build(None, None, on_thread_start)
    }

    fn build(stall: Option<Stall>, per_message: Option<Duration>, on_thread_start: impl Fn() + Send + Sync + 'static) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).on_thread_start(on_thread_start).enable_all().build().unwrap();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (go_away, go_away_rx) = watch::channel(None);
        let t0 = Instant::now();
        let open = Arc::new(AtomicUsize::new(0));
        let counter = open.clone();
        rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, stall, per_message, t0, go_away_rx.clone(), counter.clone()));
            }
        });
        Self { addr, rt: Some(rt), go_away, open }
    }

    /// WebSocket connections the server holds now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Every connection sends a close frame 1001 (going away) and ends, as a server shutting down does.
    pub fn go_away(&self) {
        self.go_away_saying("test server going away");
    }

    /// [`Self::go_away`] with this reason in the close frames (at most 123 bytes).
    pub fn go_away_saying(&self, reason: &str) {
        self.go_away.send_replace(Some(reason.to_owned()));
    }

    /// The server vanishes: every socket is closed without a close frame.
    pub fn kill(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn serve(tcp: TcpStream, stall: Option<Stall>, per_message: Option<Duration>, t0: Instant, mut go_away: watch::Receiver<Option<String>>, open: Arc<AtomicUsize>) {
    tcp.set_nodelay(true).unwrap();
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
    open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(open);
    loop {
        tokio::select! {
            // `changed` rather than `wait_for`: its output holds no lock guard across an await.
            _ = go_away.changed() => {
                let reason = go_away.borrow().clone().unwrap_or_default();
                let frame = CloseFrame { code: CloseCode::Away, reason: reason.into() };
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
                return;
            }
            msg = ws.next() => match msg {
                Some(Ok(m)) if m.is_text() || m.is_binary() => {
                    if let Some(s) = stall {
                        wait_out_stall(s, t0).await;
                    }
                    if let Some(d) = per_message {
                        tokio::time::sleep(d).await;
                    }
                    if ws.send(m).await.is_err() {
                        return;
                    }
                }
                // Keep reading after a close frame so tungstenite can send its reply.
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return,
            }
        }
    }
}

async fn wait_out_stall(s: Stall, t0: Instant) {
    let every = s.every.as_nanos();
    let phase = t0.elapsed().as_nanos() % every;
    let stall_from = every - s.pause.as_nanos();
    if phase >= stall_from {
        tokio::time::sleep(Duration::from_nanos((every - phase) as u64)).await;
    }
}

/// A fresh, empty folder for one test's results.
pub fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("loadgen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn spawn_loadgen(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wsbench-loadgen"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the loadgen binary starts")
}

/// Waits for the child at most `limit`; kills it and panics beyond.
pub fn wait(mut child: Child, limit: Duration) -> (ExitStatus, String, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("loadgen still running after {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the loadgen to its end (bounded by `limit`).
pub fn run_loadgen(args: &[&str], limit: Duration) -> (ExitStatus, String, String) {
    wait(spawn_loadgen(args), limit)
}

/// Everything a run wrote.
pub struct Results {
    pub summary: LoadgenSummary,
    pub latency: Vec<LogInterval>,
    pub service_time: Vec<LogInterval>,
    pub send_lag: Vec<LogInterval>,
    pub rows: Vec<IntervalRow>,
}

/// Reads and parses every file of a run; panics with the file's name when one is missing or bad.
pub fn read_results(dir: &Path) -> Results {
    let text = std::fs::read_to_string(dir.join(SUMMARY)).unwrap_or_else(|e| panic!("{SUMMARY}: {e}"));
    let summary: LoadgenSummary = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{SUMMARY}: {e}\n{text}"));
    let log = |f: &str| read_interval_log(&dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let mut reader = csv::Reader::from_path(dir.join(INTERVALS_CSV)).unwrap();
    let rows = reader.deserialize().collect::<Result<Vec<IntervalRow>, _>>().unwrap();
    Results { summary, latency: log(LATENCY_LOG), service_time: log(SERVICE_TIME_LOG), send_lag: log(SEND_LAG_LOG), rows }
}

impl Results {
    /// The interval logs hold exactly what the summary reports.
    pub fn assert_consistent(&self) {
        let s = &self.summary;
        assert_eq!(total(&self.latency).len(), s.latency_us.count, "latency.hlog vs summary");
        assert_eq!(total(&self.service_time).len(), s.service_time_us.count, "service_time.hlog vs summary");
        assert_eq!(total(&self.send_lag).len(), s.send_lag_us.count, "send_lag.hlog vs summary");
        assert_eq!(self.latency.len(), self.rows.len(), "one csv row per log entry");
        let sent: u64 = self.rows.iter().map(|r| r.sent).sum();
        let received: u64 = self.rows.iter().map(|r| r.received).sum();
        assert_eq!(sent, s.messages.sent, "intervals.csv sent vs summary");
        assert_eq!(received, s.messages.received, "intervals.csv received vs summary");
        assert_eq!(s.schema_version, wsbench_core::SCHEMA_VERSION);
        assert_eq!(s.complete, s.reason.is_none());
    }
}
