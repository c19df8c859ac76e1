//! The zero-alloc client engine (`--engine zero-alloc`) end to end: the real binary against the
//! in-test echo server (tokio-tungstenite, an independent peer), in closed and open loop, text
//! and binary, and the way a server going away or dying is reported.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{out_dir, read_results, run_loadgen, serial, spawn_loadgen, wait, EchoServer};
use wsbench_core::plan::{Engine, Mode};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs 1 KiB messages for 2 s and checks that every one came back intact.
fn clean_run(name: &str, extra: &[&str], mode: Mode) -> wsbench_core::result::LoadgenSummary {
    let _turn = serial();
    let server = EchoServer::start(None);
    let dir = out_dir(name);
    let url = server.url();
    let mut args = vec!["--url", &url, "--engine", "zero-alloc", "--connections", "8", "--threads", "2", "--size", "1KiB"];
    args.extend_from_slice(&["--duration", "2s", "--warmup", "500ms", "--out", dir.to_str().unwrap()]);
    args.push(if mode == Mode::Text { "--text" } else { "--binary" });
    args.extend_from_slice(extra);
    let (status, _, stderr) = run_loadgen(&args, LIMIT);
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    let s = &r.summary;
    assert!(s.complete, "{:?}", s.reason);
    assert_eq!(s.config.engine, Engine::ZeroAlloc);
    assert_eq!(s.config.mode, mode);
    assert!(s.messages.received > 1000, "{:?}", s.messages);
    assert_eq!(s.messages.received, s.messages.sent, "{:?}", s.messages);
    assert_eq!((s.messages.errors, s.messages.corrupted, s.messages.lost), (0, 0, 0), "{:?}", s.messages);
    assert_eq!((s.connections.established, s.connections.failed), (8, 0));
    eprintln!("{name}: {:.0} msgs/s, latency p50 {} us p99 {} us", s.throughput_msgs_per_s, s.latency_us.p50, s.latency_us.p99);
    r.summary
}

#[test]
fn closed_loop_binary_echoes_check_out() {
    clean_run("zero-closed-binary", &["--in-flight", "4"], Mode::Binary);
}

#[test]
fn closed_loop_text_echoes_check_out() {
    clean_run("zero-closed-text", &["--in-flight", "1"], Mode::Text);
}

#[test]
fn open_loop_binary_echoes_check_out() {
    clean_run("zero-open-binary", &["--rate", "20000"], Mode::Binary);
}

#[test]
fn open_loop_text_echoes_check_out() {
    clean_run("zero-open-text", &["--rate", "20000"], Mode::Text);
}

/// `--rx-timestamps kernel`: every echo still checks out, and is timed by the kernel's stamp
/// (the in-test server is a different peer from wsbench's own, so nothing here depends on it).
#[test]
fn open_loop_with_kernel_stamps_echoes_check_out() {
    let s = clean_run("zero-open-kernel-stamps", &["--rate", "20000", "--rx-timestamps", "kernel"], Mode::Binary);
    let rx = s.rx_timestamps.expect("kernel stamps are reported");
    assert_eq!((rx.kernel_connections, rx.user_connections, rx.fallback.as_deref()), (8, 0, None), "{rx:?}");
    assert!(rx.kernel_echoes >= s.messages.received, "{rx:?}");
    // A stamp from before the first segment of the run can be missing (the kernel turns
    // stamping on asynchronously); a refused stamp is timed when read and counted.
    assert!(rx.refused < 100, "{rx:?}");
    // Timed by the kernel, an echo is never earlier than its send: service time stays positive.
    assert!(s.service_time_us.p50 > 0.0, "{:?}", s.service_time_us);
}

/// Closed loop wakes for every echo anyway: kernel stamps are not used, and the summary says why.
#[test]
fn closed_loop_falls_back_to_user_time_and_says_why() {
    let s = clean_run("zero-closed-kernel-stamps", &["--in-flight", "2", "--rx-timestamps", "kernel"], Mode::Binary);
    let rx = s.rx_timestamps.expect("asked for, so reported");
    assert_eq!((rx.kernel_connections, rx.user_connections, rx.kernel_echoes), (0, 8, 0));
    assert!(rx.fallback.as_deref().is_some_and(|f| f.contains("closed loop")), "{rx:?}");
}

#[test]
fn large_messages_span_several_reads() {
    // 256 KiB frames arrive over many reads and are written over several writes.
    let _turn = serial();
    let server = EchoServer::start(None);
    let dir = out_dir("zero-large");
    let url = server.url();
    let (status, _, stderr) = run_loadgen(
        &["--url", &url, "--engine", "zero-alloc", "--connections", "2", "--in-flight", "3", "--size", "256KiB", "--duration", "1s", "--warmup", "0s", "--out", dir.to_str().unwrap()],
        LIMIT,
    );
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    let s = read_results(&dir).summary;
    assert!(s.messages.received > 0);
    assert_eq!((s.messages.sent, s.messages.errors, s.messages.corrupted, s.messages.lost), (s.messages.received, 0, 0, 0), "{:?}", s.messages);
}

fn wait_for_rows(dir: &Path, n: usize) {
    let t0 = Instant::now();
    while t0.elapsed() < LIMIT {
        if let Ok(text) = std::fs::read_to_string(dir.join(wsbench_core::layout::INTERVALS_CSV)) {
            if text.lines().count() > n {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no interval rows in {}", dir.display());
}

#[test]
fn a_server_going_away_is_named_by_its_close_code() {
    let server = EchoServer::start(None);
    let dir = out_dir("zero-away");
    let url = server.url();
    let child = spawn_loadgen(&["--url", &url, "--engine", "zero-alloc", "--connections", "3", "--threads", "2", "--rate", "600", "--duration", "60s", "--warmup", "0s", "--out", dir.to_str().unwrap()]);
    wait_for_rows(&dir, 1);
    server.go_away();
    let (status, _, stderr) = wait(child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    assert_eq!(r.summary.reason.as_deref(), Some("server closed 3 of 3 connections (close 1001 going away)"));
}

/// With kernel stamps a single frame does not wake the worker: the server's close frame is
/// read at the connection's next firing, and the run ends the same way.
#[test]
fn a_server_going_away_is_heard_with_kernel_stamps() {
    let server = EchoServer::start(None);
    let dir = out_dir("zero-away-kernel-stamps");
    let url = server.url();
    let child = spawn_loadgen(&["--url", &url, "--engine", "zero-alloc", "--connections", "3", "--threads", "2", "--rate", "600", "--rx-timestamps", "kernel", "--duration", "60s", "--warmup", "0s", "--out", dir.to_str().unwrap()]);
    wait_for_rows(&dir, 1);
    server.go_away();
    let (status, _, stderr) = wait(child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    assert_eq!(r.summary.reason.as_deref(), Some("server closed 3 of 3 connections (close 1001 going away)"));
    assert_eq!(r.summary.rx_timestamps.map(|rx| rx.kernel_connections), Some(3));
}

#[test]
fn a_dead_server_is_an_error_per_connection() {
    let server = EchoServer::start(None);
    let dir = out_dir("zero-dead");
    let url = server.url();
    let child = spawn_loadgen(&["--url", &url, "--engine", "zero-alloc", "--connections", "5", "--duration", "60s", "--warmup", "0s", "--out", dir.to_str().unwrap()]);
    wait_for_rows(&dir, 1);
    server.kill();
    let (status, _, stderr) = wait(child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    let s = read_results(&dir).summary;
    assert!(s.reason.as_deref().unwrap().starts_with("server closed 5 of 5 connections"), "{:?}", s.reason);
    assert_eq!(s.messages.errors, 5, "{:?}", s.messages);
}
