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
fn clean_run(name: &str, extra: &[&str], mode: Mode) {
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
