//! Allocations per message, read from `server.json` as users read them, under real load.
//!
//! Each test starts the real `wsbench-server` binary (which counts its allocations), drives it
//! from a client in this process with wsbench messages (a warm-up first, then 100,000+
//! measured messages, several in flight per connection), stops it with SIGTERM and reads
//! `allocations_per_message` (the whole process, first to last measured message) and
//! `worker_allocations_per_message` (the runtime threads that handled the messages).
//!
//! The echo path of `--handler zero-alloc` must not allocate at all: its worker figure is
//! exactly 0. The process figure may carry the latency harvester's once-per-second interval-log
//! write (compressing one histogram allocates a few buffers); it stays far below 0.001.
//! `--handler alloc` decodes and re-encodes every message through serde_json and must show it.
//! Another engine gets the same proof by calling [`measure`] with its `--engine` name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Barrier;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use wsbench_core::clock::now_ns;
use wsbench_core::header::{fill_payload, MessageHeader};
use wsbench_core::layout::SERVER_SUMMARY;
use wsbench_core::result::ServerSummary;

mod common;

use common::{ServerProcess, STEP};

/// Connections, and messages in flight on each.
const CONNECTIONS: usize = 4;
const IN_FLIGHT: usize = 8;
const SIZE: usize = 64;
const WARMUP: Duration = Duration::from_secs(1);

/// What a run measured.
struct Measured {
    summary: ServerSummary,
    /// Measured (non-warm-up) messages the client had echoed.
    messages: u64,
}

/// Serves `messages` measured messages (after [`WARMUP`]) with `wsbench-server --engine
/// <engine> --handler <handler>` and returns its `server.json`.
async fn measure(engine: &str, handler: &str, messages: u64) -> Measured {
    measure_sized(engine, handler, messages, SIZE).await
}

/// As [`measure`], with messages of `size` bytes.
async fn measure_sized(engine: &str, handler: &str, messages: u64, size: usize) -> Measured {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "server-alloc-{engine}-{handler}-{size}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let out_arg = out.to_str().expect("UTF-8 path");
    let mut server =
        ServerProcess::start(&["--engine", engine, "--handler", handler, "--out", out_arg]).await;
    let addr = server.addr;

    let run = Arc::new(Run {
        start: Instant::now(),
        target: messages,
        size,
        measured: AtomicU64::new(0),
        done: Barrier::new(CONNECTIONS),
    });
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(client(addr, Arc::clone(&run))))
        .collect();
    let mut measured = 0;
    for c in clients {
        measured += timeout(Duration::from_secs(120), c)
            .await
            .expect("load in time")
            .unwrap();
    }

    server.signal(libc::SIGTERM);
    let status = timeout(STEP, server.child.wait())
        .await
        .expect("exit in time")
        .unwrap();
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(out.join(SERVER_SUMMARY)).expect("server.json");
    let summary: ServerSummary = serde_json::from_str(&text).expect("server.json parses");
    std::fs::remove_dir_all(&out).ok();
    eprintln!(
        "{engine}/{handler}: {measured} measured messages; allocations per message: workers {:?}, process {:?}",
        summary.worker_allocations_per_message, summary.allocations_per_message
    );
    Measured {
        summary,
        messages: measured,
    }
}

/// What the clients of one run share.
struct Run {
    start: Instant,
    /// Measured messages wanted, over all connections.
    target: u64,
    /// Bytes per message.
    size: usize,
    measured: AtomicU64,
    /// Every connection waits here before closing, so no connection's closing (which allocates
    /// in the server) falls between two measured messages of another.
    done: Barrier,
}

/// One connection: [`IN_FLIGHT`] messages at a time, each batch sent in one write and every echo
/// checked, until the run has its measured messages. Returns how many of them this one sent.
async fn client(addr: SocketAddr, run: Arc<Run>) -> u64 {
    let (mut ws, _) = timeout(
        STEP,
        tokio_tungstenite::connect_async(format!("ws://{addr}/")),
    )
    .await
    .unwrap()
    .unwrap();
    let (mut seq, mut done) = (0u64, 0u64);
    while run.measured.load(Relaxed) < run.target {
        let warmup = run.start.elapsed() < WARMUP;
        let mut batch = Vec::with_capacity(IN_FLIGHT);
        for _ in 0..IN_FLIGHT {
            let mut m = vec![0u8; run.size];
            let now = now_ns();
            MessageHeader {
                seq,
                intended_ns: now,
                sent_ns: now,
                warmup,
            }
            .encode(&mut m);
            fill_payload(&mut m, seq);
            seq += 1;
            ws.feed(Message::binary(m.clone())).await.unwrap();
            batch.push(m);
        }
        ws.flush().await.unwrap();
        for sent in batch {
            let echo = timeout(STEP, ws.next())
                .await
                .expect("an echo in time")
                .expect("open")
                .expect("no error");
            assert_eq!(echo.into_data(), sent, "echoes are byte-identical");
        }
        if !warmup {
            done += IN_FLIGHT as u64;
            run.measured.fetch_add(IN_FLIGHT as u64, Relaxed);
        }
    }
    run.done.wait().await;
    timeout(STEP, ws.close(None)).await.unwrap().unwrap();
    while let Ok(Some(Ok(_))) = timeout(STEP, ws.next()).await {}
    done
}

/// Every measured message of `m` was recorded, and the runtime threads allocated nothing while
/// echoing `what`.
fn assert_recorded_without_allocating(m: &Measured, what: &str) {
    assert_eq!(
        m.summary.one_way_latency_us.count, m.messages,
        "every measured message was recorded"
    );
    assert_eq!(
        m.summary.worker_allocations_per_message,
        Some(0.0),
        "the runtime threads allocated while echoing{what}"
    );
}

/// Echoes 120,000 messages through `engine` and checks that its runtime threads allocated
/// nothing and every measured message was recorded.
async fn assert_echo_path_allocates_nothing(engine: &str) {
    let m = measure(engine, "zero-alloc", 120_000).await;
    assert!(m.messages >= 100_000);
    assert_recorded_without_allocating(&m, "");
    let process = m
        .summary
        .allocations_per_message
        .expect("a counting server reports the figure");
    assert!(
        process <= 0.001,
        "{process} allocations per message in the server process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tungstenite_echo_path_allocates_nothing() {
    assert_echo_path_allocates_nothing("tungstenite").await;
}

/// 8 KiB per batch: tungstenite's 2 KiB reads fill, and the engine reads through its read-ahead
/// buffer, allocated once in the warm-up and kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tungstenite_pipelined_1kib_echo_path_allocates_nothing() {
    let m = measure_sized("tungstenite", "zero-alloc", 60_000, 1024).await;
    assert!(m.messages >= 50_000);
    assert_eq!(
        m.summary.worker_allocations_per_message,
        Some(0.0),
        "the runtime threads allocated while echoing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_alloc_echo_path_allocates_nothing() {
    assert_echo_path_allocates_nothing("zero-alloc").await;
}

/// Large messages (each past the 64 KiB shared buffer, so read into a buffer of the
/// connection's own and echoed in place): after the first, a connection reuses the buffer it
/// kept, so the runtime threads allocate nothing per message at any size.
async fn assert_large_echoes_allocate_nothing(size: usize, messages: u64) {
    let m = measure_sized("zero-alloc", "zero-alloc", messages, size).await;
    assert!(m.messages >= messages, "{} of {messages}", m.messages);
    assert_recorded_without_allocating(&m, &format!(" {size}-byte messages"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_alloc_256kib_echoes_allocate_nothing() {
    assert_large_echoes_allocate_nothing(256 << 10, 4_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_alloc_1mib_echoes_allocate_nothing() {
    assert_large_echoes_allocate_nothing(1 << 20, 1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alloc_handler_allocates_on_every_message() {
    let m = measure("tungstenite", "alloc", 30_000).await;
    let workers = m
        .summary
        .worker_allocations_per_message
        .expect("figure present");
    let process = m.summary.allocations_per_message.expect("figure present");
    assert!(
        workers > 1.0 && process >= workers,
        "workers {workers}, process {process}"
    );
}
