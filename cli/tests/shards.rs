//! End to end: load-generator shards (`wsbench loadgen --shard i/n --start-at T`) split one
//! load exactly, begin together, say when they are late, and `wsbench collect` refuses to
//! report until every shard is there.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use tokio_tungstenite::tungstenite::{self, Message};
use wsbench_core::header::MessageHeader;

/// A wall-clock instant `ahead` from now, as `--start-at` takes it.
fn start_at(ahead: Duration) -> String {
    humantime::format_rfc3339_millis(SystemTime::now() + ahead).to_string()
}

fn start_before(behind: Duration) -> String {
    humantime::format_rfc3339_millis(SystemTime::now() - behind).to_string()
}

/// One message as the recording server saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    intended_ns: u64,
    warmup: bool,
    /// Which of the server's listeners received it.
    listener: usize,
}

/// An echo server on 127.0.0.1 with several listeners that records every message's header, so
/// a test can read the intended send times the load generators used.
struct RecordingServer {
    urls: Vec<String>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl RecordingServer {
    fn start(listeners: usize) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut urls = Vec::new();
        for id in 0..listeners {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            urls.push(format!("ws://{}/", listener.local_addr().unwrap()));
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                // Bounded: the test sets `stop`, or this gives up after two minutes.
                let end = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).unwrap();
                            let seen = seen.clone();
                            std::thread::spawn(move || echo(stream, id, &seen));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self { urls, seen, stop }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Echoes one connection until it closes, recording each message's header.
fn echo(stream: std::net::TcpStream, listener: usize, seen: &Mutex<Vec<Seen>>) {
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let Ok(mut ws) = tungstenite::accept(stream) else { return };
    while let Ok(msg) = ws.read() {
        match msg {
            Message::Binary(ref b) => {
                if let Some(h) = MessageHeader::decode(b) {
                    seen.lock().unwrap().push(Seen { intended_ns: h.intended_ns, warmup: h.warmup, listener });
                }
                if ws.send(msg).is_err() {
                    return;
                }
            }
            Message::Close(_) => return,
            _ => {}
        }
    }
}

/// Starts `wsbench loadgen` with `args`; the caller waits for it.
fn spawn_loadgen(args: &[&str]) -> std::process::Child {
    wsbench().arg("loadgen").args(args).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
}

fn finish(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    if wait_for(&mut child, limit).is_none() {
        let _ = child.kill();
        panic!("loadgen did not finish within {limit:?}");
    }
    child.wait_with_output().unwrap()
}

/// The load of these tests: 5 connections at 400 msgs/s, so 2 shards hold 3 and 2 connections.
const LOAD: [&str; 12] = ["--connections", "5", "--rate", "400", "--warmup", "500ms", "--duration", "2s", "--drain-timeout", "1s", "--connect-rate", "100"];
/// 400 msgs/s for 2 s.
const MEASURED: u64 = 800;
const NS_PER_MSG: u64 = 2_500_000;

/// Measured (non-warm-up) intended times of one listener set, sorted.
fn measured(seen: &[Seen], listeners: &[usize]) -> Vec<Seen> {
    let mut v: Vec<Seen> = seen.iter().filter(|s| !s.warmup && listeners.contains(&s.listener)).copied().collect();
    v.sort_by_key(|s| s.intended_ns);
    v
}

#[test]
fn two_shards_started_together_send_exactly_the_one_process_schedule() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    // Listener 0 and 1 take shard 0 and 1; listener 2 the same load from one process.
    let server = RecordingServer::start(3);
    let out = tmp.path().join("sharded");
    let at = start_at(Duration::from_secs(4));
    let shards: Vec<_> = (0..2)
        .map(|i| {
            let shard = format!("{i}/2");
            let args = [&LOAD[..], &["--url", &server.urls[i], "--shard", &shard, "--start-at", &at, "--out", out.to_str().unwrap()]].concat();
            spawn_loadgen(&args)
        })
        .collect();
    for (i, child) in shards.into_iter().enumerate() {
        let o = finish(child, Duration::from_secs(40));
        assert!(o.status.success(), "shard {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let single_dir = tmp.path().join("single");
    let o = loadgen(&[&LOAD[..], &["--url", &server.urls[2], "--out", single_dir.to_str().unwrap()]].concat(), Duration::from_secs(40));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // What users read: each shard's summary under shard-<i>/, with its part and the whole.
    let parts: Vec<_> = (0..2).map(|i| summary(&out.join(format!("shard-{i}")))).collect();
    let single = summary(&single_dir);
    assert_eq!(parts.iter().map(|s| s.connections.established).collect::<Vec<_>>(), [3, 2], "striped: connections 0, 2, 4 and 1, 3");
    assert_eq!(parts.iter().map(|s| s.config.connections).collect::<Vec<_>>(), [3, 2]);
    for (i, s) in parts.iter().enumerate() {
        let shard = s.shard.as_ref().expect("a shard says which it is");
        assert_eq!((shard.index, shard.count, shard.total_connections, shard.total_rate), (i as u32, 2, 5, Some(400.0)));
        let start = s.start.as_ref().expect("a shared start is reported");
        assert!(!start.late, "shard {i} started {:.3} s late", start.late_by_s);
        assert_eq!(start.at, at);
        assert_eq!(s.messages.lost, 0);
    }
    assert_eq!(single.messages.sent, MEASURED);
    assert_eq!(parts.iter().map(|s| s.messages.sent).sum::<u64>(), single.messages.sent, "the shards together send what one process sends");
    assert_eq!(parts.iter().map(|s| s.messages.sent).collect::<Vec<_>>(), [MEASURED * 3 / 5, MEASURED * 2 / 5], "each its share");

    // What the server saw: the one-process schedule is one message every 2.5 ms ...
    let seen = server.seen();
    let one = measured(&seen, &[2]);
    assert_eq!(one.len() as u64, MEASURED);
    for (k, s) in one.iter().enumerate() {
        let offset = s.intended_ns - one[0].intended_ns;
        assert!(offset.abs_diff(k as u64 * NS_PER_MSG) <= 1, "one process, message {k}: offset {offset} ns");
    }
    // ... and the shards' union is the same schedule: message g is sent by connection g % 5,
    // which is shard (g % 5) % 2, so the shards take turns 0 1 0 1 0 | 0 1 0 1 0 | ... The two
    // processes convert the shared wall-clock start to monotonic time separately; they agree
    // within microseconds, far below the 2.5 ms between messages.
    let union = measured(&seen, &[0, 1]);
    assert_eq!(union.len(), one.len(), "as many messages as one process");
    let pattern = [0, 1, 0, 1, 0];
    let mut worst = 0;
    for (k, s) in union.iter().enumerate() {
        assert_eq!(s.listener, pattern[k % 5], "message {k} came from the wrong shard");
        let offset = s.intended_ns - union[0].intended_ns;
        let want = one[k].intended_ns - one[0].intended_ns;
        assert!(offset.abs_diff(want) < 500_000, "message {k}: {offset} ns after the first, one process {want} ns");
        worst = worst.max(offset.abs_diff(want));
    }
    eprintln!("shards vs one process: intended times differ by at most {worst} ns");
    // The shared start: the shards' first measured messages are one interval apart, not two
    // independent starts.
    let first = |l: usize| union.iter().find(|s| s.listener == l).unwrap().intended_ns;
    assert!(first(1).abs_diff(first(0) + NS_PER_MSG) < 500_000, "shard 1 begins 2.5 ms after shard 0");
}

#[test]
fn a_shard_that_starts_after_its_start_time_says_it_is_late() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&[]);
    let url = server.url();
    let at = start_before(Duration::from_secs(3));
    let out = tmp.path().join("late");
    let args = [
        "--url", &url, "--connections", "2", "--rate", "50", "--warmup", "0s", "--duration", "4s", "--interval", "1s", "--drain-timeout", "1s",
        "--shard", "1/2", "--start-at", &at, "--out", out.to_str().unwrap(),
    ];
    let o = loadgen(&args, Duration::from_secs(40));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a late shard fails: {stderr}");
    assert!(stderr.contains("after --start-at"), "{stderr}");
    let s = summary(&out.join("shard-1"));
    let start = s.start.as_ref().unwrap();
    assert!(start.late, "{start:?}");
    assert!(start.late_by_s >= 2.5, "{start:?}");
    assert!(s.failed_checks.iter().any(|c| c.contains("shard 1/2 began its warm-up")), "{:?}", s.failed_checks);
    // The raw file says so too, for tools that read JSON without our types.
    assert_eq!(json(&out.join("shard-1/summary.json"))["start"]["late"], true);
}
