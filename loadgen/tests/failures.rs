//! Runs that fail or are cut short: the exit code says so and the files are still there.

mod common;

use std::time::{Duration, Instant};

use common::{out_dir, read_results, run_loadgen, spawn_loadgen, wait, EchoServer};
use wsbench_core::layout::INTERVALS_CSV;
use wsbench_core::warning::WarningKind;

const LIMIT: Duration = Duration::from_secs(30);

/// Waits (bounded) until the run has written at least `rows` interval rows.
fn wait_for_rows(dir: &std::path::Path, rows: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = std::fs::read_to_string(dir.join(INTERVALS_CSV)).map(|t| t.lines().count().saturating_sub(1)).unwrap_or(0);
        if n >= rows {
            return;
        }
        assert!(Instant::now() < deadline, "no interval written in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigint_stops_the_run_and_keeps_what_was_measured() {
    let server = EchoServer::start(None);
    let dir = out_dir("sigint");
    let url = server.url();
    let child = spawn_loadgen(&["--url", &url, "--connections", "4", "--duration", "60s", "--warmup", "0s", "--out", dir.to_str().unwrap()]);
    wait_for_rows(&dir, 1);
    // SAFETY: plain syscall on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let (status, _, stderr) = wait(child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    let s = &r.summary;
    assert!(!s.complete);
    assert_eq!(s.reason.as_deref(), Some("interrupted by SIGINT"));
    assert!(s.warnings.iter().any(|w| w.kind == WarningKind::Incomplete));
    assert!(s.duration_s > 0.5 && s.duration_s < 30.0, "window cut short: {}", s.duration_s);
    assert!(s.messages.received > 0);
    assert_eq!(s.messages.errors, 0, "{:?}", s.messages);
}

#[test]
fn sigterm_is_an_interruption_too() {
    let server = EchoServer::start(None);
    let dir = out_dir("sigterm");
    let url = server.url();
    let child = spawn_loadgen(&["--url", &url, "--connections", "2", "--rate", "500", "--duration", "60s", "--warmup", "0s", "--out", dir.to_str().unwrap()]);
    wait_for_rows(&dir, 1);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let (status, _, stderr) = wait(child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    assert_eq!(r.summary.reason.as_deref(), Some("interrupted by SIGTERM"));
}

#[test]
fn a_killed_server_ends_the_run_with_a_reason() {
    let server = EchoServer::start(None);
    let dir = out_dir("killed");
    let url = server.url();
    let child = spawn_loadgen(&["--url", &url, "--connections", "5", "--duration", "60s", "--warmup", "0s", "--out", dir.to_str().unwrap()]);
    wait_for_rows(&dir, 1);
    server.kill();
    let (status, _, stderr) = wait(child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    let s = &r.summary;
    assert!(!s.complete);
    let reason = s.reason.as_deref().unwrap();
    assert!(reason.starts_with("server closed 5 of 5 connections"), "{reason}");
    assert!(stderr.contains(reason), "stderr names the reason: {stderr}");
    assert_eq!(s.messages.errors, 5, "a dropped connection is an error: {:?}", s.messages);
    assert!(s.messages.received > 0);
}

#[test]
fn a_server_going_away_is_named_by_its_close_code() {
    let server = EchoServer::start(None);
    let dir = out_dir("away");
    let url = server.url();
    let child = spawn_loadgen(&["--url", &url, "--connections", "3", "--threads", "2", "--rate", "600", "--duration", "60s", "--warmup", "0s", "--out", dir.to_str().unwrap()]);
    wait_for_rows(&dir, 1);
    server.go_away();
    let (status, _, stderr) = wait(child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    assert_eq!(r.summary.reason.as_deref(), Some("server closed 3 of 3 connections (close 1001 going away)"));
}

#[test]
fn the_largest_close_frame_fits_the_smallest_read_buffer() {
    // 30 msgs/s over 3 connections: the zero-alloc engine's buffers are at their smallest, and
    // a close frame with 125 bytes of payload (code and a 123-byte reason) must still be read.
    let server = EchoServer::start(None);
    let dir = out_dir("long-close");
    let url = server.url();
    let child = spawn_loadgen(&["--url", &url, "--engine", "zero-alloc", "--connections", "3", "--rate", "30", "--duration", "60s", "--warmup", "0s", "--out", dir.to_str().unwrap()]);
    wait_for_rows(&dir, 1);
    server.go_away_saying(&"x".repeat(123));
    let (status, _, stderr) = wait(child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    assert_eq!(r.summary.reason.as_deref(), Some("server closed 3 of 3 connections (close 1001 going away)"));
}

#[test]
fn no_server_means_no_run() {
    // Bind and drop a listener: the port is closed, and nobody else got it in between.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = out_dir("refused");
    let url = format!("ws://127.0.0.1:{port}/");
    let (status, _, stderr) = run_loadgen(&["--url", &url, "--connections", "3", "--duration", "1s", "--out", dir.to_str().unwrap()], LIMIT);
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    let s = &r.summary;
    assert!(!s.complete);
    assert!(s.reason.as_deref().unwrap().starts_with("no connection to"), "{:?}", s.reason);
    assert_eq!((s.connections.established, s.connections.failed), (0, 3));
    assert_eq!(s.duration_s, 0.0);
    assert!(r.rows.is_empty());
}

#[test]
fn a_plain_http_server_is_named_by_its_status_on_both_engines() {
    // A web server that is not a WebSocket server answers the upgrade with `HTTP/1.0 200 OK`, as
    // Python's http.server does; both client engines must say so in the same words.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten().take(16) {
            use std::io::{Read, Write};
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\nContent-Type: text/html\r\n\r\n<html></html>");
        }
    });
    for engine in ["tungstenite", "zero-alloc"] {
        let dir = out_dir(&format!("plain-http-{engine}"));
        let args = ["--engine", engine, "--url", &url, "--connections", "2", "--duration", "1s", "--out", dir.to_str().unwrap()];
        let (status, _, stderr) = run_loadgen(&args, LIMIT);
        assert_eq!(status.code(), Some(1), "{engine}: {stderr}");
        assert!(stderr.contains("the server answered 200 OK instead of 101 Switching Protocols"), "{engine}: {stderr}");
        let s = read_results(&dir).summary;
        assert_eq!(s.connections.failures.get("HTTP status 200"), Some(&2), "{engine}: {:?}", s.connections.failures);
    }
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [&["--size", "8"][..], &["--text", "--binary"], &["--url", "http://127.0.0.1:1/"], &["--url", "ws://127.0.0.1:1/", "--insecure"], &["--duration", "soon"], &["--rate", "-5"]] {
        let (status, stdout, stderr) = run_loadgen(args, LIMIT);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
    let (_, _, stderr) = run_loadgen(&["--size", "8"], LIMIT);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("32 bytes"), "{stderr}");
}

#[test]
fn realtime_priority_refused_is_a_one_line_error() {
    // setpriv (util-linux) drops CAP_SYS_NICE, as for any unprivileged user.
    let ok = std::process::Command::new("setpriv").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "this test needs `setpriv` (util-linux) on PATH");
    let server = EchoServer::start(None);
    let out = std::process::Command::new("setpriv")
        .args(["--bounding-set=-sys_nice", "--inh-caps=-sys_nice", env!("CARGO_BIN_EXE_wsbench-loadgen"), "--url", &server.url(), "--realtime", "--duration", "1s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("SCHED_FIFO") && stderr.contains("--realtime"), "{stderr}");
}
