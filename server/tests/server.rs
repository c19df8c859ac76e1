//! End-to-end tests of the real `wsbench-server` binary on 127.0.0.1, port 0.
//!
//! Each test starts the binary, reads its readiness line from stdout, and then checks what users
//! see: echoes, HTTP answers, close codes, exit codes, stderr and the result files. Every await
//! has a timeout and every loop a bound; nothing asserts on speed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use wsbench_core::clock::now_ns;
use wsbench_core::header::{fill_payload, MessageHeader, HEADER_LEN};
use wsbench_core::hist::{read_interval_log, total};
use wsbench_core::layout::{SERVER_LATENCY_LOG, SERVER_SUMMARY};
use wsbench_core::result::ServerSummary;

mod common;

use common::{Client, ServerProcess, BIN, STEP};

impl ServerProcess {
    /// Sends `sig` and waits for the exit; returns the status and how long the exit took.
    async fn stop(mut self, sig: libc::c_int) -> (std::process::ExitStatus, Duration, Vec<String>) {
        let t0 = Instant::now();
        self.signal(sig);
        let status = timeout(STEP, self.child.wait())
            .await
            .expect("exit in time")
            .expect("wait");
        let took = t0.elapsed();
        (status, took, self.rest_of_stdout().await)
    }

    async fn rest_of_stdout(&mut self) -> Vec<String> {
        let mut rest = Vec::new();
        while let Ok(Ok(Some(line))) = timeout(STEP, self.stdout.next_line()).await {
            rest.push(line);
        }
        rest
    }
}

async fn next(ws: &mut Client) -> Option<Message> {
    match timeout(STEP, ws.next()).await.expect("a message in time") {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => panic!("client read failed: {e}"),
        None => None,
    }
}

/// Closes from the client side and waits for the server's reply.
async fn close(mut ws: Client) {
    timeout(STEP, ws.close(None))
        .await
        .expect("close in time")
        .expect("close");
    for _ in 0..100 {
        match timeout(STEP, ws.next()).await.expect("close reply in time") {
            Some(Ok(_)) => continue,
            _ => return,
        }
    }
    panic!("no end of stream after closing");
}

/// One HTTP/1.1 GET; returns the whole answer (the server closes after answering).
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = timeout(STEP, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("send request");
    let mut answer = Vec::new();
    timeout(STEP, s.read_to_end(&mut answer))
        .await
        .expect("answer in time")
        .expect("read answer");
    String::from_utf8(answer).expect("UTF-8 answer")
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}

fn wsbench_message(seq: u64, size: usize, warmup: bool) -> Vec<u8> {
    let mut buf = vec![0u8; size.max(HEADER_LEN)];
    let now = now_ns();
    MessageHeader {
        seq,
        intended_ns: now,
        sent_ns: now,
        warmup,
    }
    .encode(&mut buf);
    fill_payload(&mut buf, seq);
    buf
}

fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wsbench-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn echoes_text_and_binary_unchanged_in_order() {
    let server = ServerProcess::start(&[]).await;
    let mut ws = server.connect().await;

    ws.send(Message::text("hello, wsbench"))
        .await
        .expect("send text");
    assert_eq!(next(&mut ws).await, Some(Message::text("hello, wsbench")));
    let binary: Vec<u8> = (0..=255u8).collect();
    ws.send(Message::binary(binary.clone()))
        .await
        .expect("send binary");
    assert_eq!(next(&mut ws).await, Some(Message::binary(binary)));
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .expect("send ping");
    assert_eq!(
        next(&mut ws).await,
        Some(Message::Pong(b"are you there".to_vec().into()))
    );

    // Pipelined: everything sent before anything is read comes back whole and in order.
    let sent: Vec<Vec<u8>> = (0..200u64)
        .map(|i| wsbench_message(i, 64 + i as usize, false))
        .collect();
    for m in &sent {
        ws.feed(Message::binary(m.clone())).await.expect("feed");
    }
    ws.flush().await.expect("flush");
    for m in &sent {
        assert_eq!(next(&mut ws).await, Some(Message::binary(m.clone())));
    }
    close(ws).await;

    let (status, _, rest) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "{status}");
    assert!(
        rest.is_empty(),
        "stdout must hold the readiness line only: {rest:?}"
    );
}

#[tokio::test]
async fn healthz_metrics_and_unknown_paths() {
    let server = ServerProcess::start(&[]).await;

    let health = http_get(server.addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
    let missing = http_get(server.addr, "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");

    let mut ws = server.connect().await;
    for i in 0..3u64 {
        ws.send(Message::binary(wsbench_message(i, 100, false)))
            .await
            .expect("send");
        assert!(matches!(next(&mut ws).await, Some(Message::Binary(_))));
    }
    let metrics = http_get(server.addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(
        metrics.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"),
        "{metrics}"
    );
    let body = metrics.split_once("\r\n\r\n").expect("head and body").1;
    assert_eq!(metric(body, "wsbench_server_connections_open"), 1);
    assert_eq!(metric(body, "wsbench_server_connections_accepted_total"), 1);
    assert_eq!(metric(body, "wsbench_server_messages_received_total"), 3);
    assert_eq!(metric(body, "wsbench_server_messages_sent_total"), 3);
    assert_eq!(metric(body, "wsbench_server_bytes_received_total"), 300);
    assert_eq!(metric(body, "wsbench_server_bytes_sent_total"), 300);
    assert_eq!(metric(body, "wsbench_server_protocol_errors_total"), 0);
    assert_eq!(metric(body, "wsbench_server_pauses_total"), 0);
    for name in [
        "wsbench_server_connections_open",
        "wsbench_server_messages_received_total",
    ] {
        assert!(body.contains(&format!("# HELP {name} ")), "{body}");
        assert!(body.contains(&format!("# TYPE {name} ")), "{body}");
    }
    close(ws).await;

    let (status, _, _) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn an_upgrade_with_the_first_frame_in_the_same_write_is_served() {
    let server = ServerProcess::start(&[]).await;
    let mut s = timeout(STEP, TcpStream::connect(server.addr))
        .await
        .expect("in time")
        .expect("connect");
    let payload = b"right behind the head";
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    )
    .into_bytes();
    request.extend_from_slice(&[0x82, 0x80 | payload.len() as u8]);
    request.extend_from_slice(&mask);
    request.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&request).await.expect("send");

    let expected_head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let mut expected = expected_head.as_bytes().to_vec();
    expected.extend_from_slice(&[0x82, payload.len() as u8]);
    expected.extend_from_slice(payload);
    let mut got = vec![0u8; expected.len()];
    timeout(STEP, s.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected)
    );
    drop(s);

    let (status, _, _) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_message_over_the_limit_is_closed_with_1009() {
    let server = ServerProcess::start(&["--max-message-size", "1KiB"]).await;
    let mut ws = server.connect().await;
    let at_limit = vec![b'x'; 1024];
    ws.send(Message::binary(at_limit.clone()))
        .await
        .expect("send");
    assert_eq!(
        next(&mut ws).await,
        Some(Message::binary(at_limit)),
        "the limit itself is allowed"
    );

    ws.send(Message::binary(vec![b'y'; 2048]))
        .await
        .expect("send");
    match next(&mut ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // The client acknowledges; the server then ends the connection.
    for _ in 0..100 {
        match timeout(STEP, ws.next()).await.expect("end in time") {
            Some(Ok(_)) => continue,
            _ => break,
        }
    }
    let body = http_get(server.addr, "/metrics").await;
    assert_eq!(metric(&body, "wsbench_server_protocol_errors_total"), 1);

    let (status, _, _) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_writes_the_results() {
    let dir = out_dir("sigterm");
    let dir_arg = dir.to_str().expect("UTF-8 temp dir").to_owned();
    let server = ServerProcess::start(&["--out", &dir_arg]).await;
    let mut ws = server.connect().await;
    for i in 0..7u64 {
        // Two warm-up messages are echoed but kept out of the latency histogram.
        let m = wsbench_message(i, 48, i < 2);
        ws.send(Message::binary(m.clone())).await.expect("send");
        assert_eq!(next(&mut ws).await, Some(Message::binary(m)));
    }
    ws.send(Message::text("not a wsbench message"))
        .await
        .expect("send");
    assert!(matches!(next(&mut ws).await, Some(Message::Text(_))));

    let t0 = Instant::now();
    server.signal(libc::SIGTERM);
    match next(&mut ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    // Reading on sends our close reply; the stream then ends.
    for _ in 0..100 {
        match timeout(STEP, ws.next()).await.expect("end in time") {
            Some(Ok(_)) => continue,
            _ => break,
        }
    }
    let mut server = server;
    let status = timeout(STEP, server.child.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    let took = t0.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(2),
        "shutdown took {took:?}; at most 2 s allowed"
    );
    assert!(server.rest_of_stdout().await.is_empty());

    let text = std::fs::read_to_string(dir.join(SERVER_SUMMARY)).expect("server.json written");
    let summary: ServerSummary =
        serde_json::from_str(&text).expect("server.json is a ServerSummary");
    assert_eq!(summary.schema_version, wsbench_core::SCHEMA_VERSION);
    assert!(summary.complete);
    assert_eq!(
        summary.config.listen,
        "127.0.0.1:0".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(summary.config.out.as_deref(), Some(dir.as_path()));
    assert!(
        summary.command.iter().any(|a| a == "--out"),
        "{:?}",
        summary.command
    );
    assert!(summary.host.cpus >= 1);
    assert!(!summary.started_at.is_empty());
    assert!(summary.duration_s > 0.0);
    assert!(summary.cpu_pct >= 0.0);
    assert_eq!(summary.counts.connections_accepted, 1);
    assert_eq!(summary.counts.connections_peak, 1);
    assert_eq!(summary.counts.messages_in, 8);
    assert_eq!(summary.counts.messages_out, 8);
    assert_eq!(summary.counts.protocol_errors, 0);
    assert_eq!(summary.pauses, 0);
    assert_eq!(summary.one_way_latency_us.count, 5);
    assert!(summary.one_way_latency_us.max >= summary.one_way_latency_us.min);

    let intervals =
        read_interval_log(&dir.join(SERVER_LATENCY_LOG)).expect("server-latency.hlog readable");
    assert!(!intervals.is_empty());
    assert_eq!(total(&intervals).len(), 5);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn sigint_stops_a_current_thread_server() {
    let server = ServerProcess::start(&["--runtime", "current-thread"]).await;
    let mut ws = server.connect().await;
    ws.send(Message::text("x")).await.expect("send");
    assert_eq!(next(&mut ws).await, Some(Message::text("x")));
    let (status, took, rest) = server.stop(libc::SIGINT).await;
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn emulated_pauses_hold_messages_that_arrive_inside_them() {
    let server = ServerProcess::start(&["--pause-every", "300ms", "--pause-for", "100ms"]).await;
    let mut ws = server.connect().await;
    // Closed loop, one message at a time, for about 1.5 s: some message is bound to arrive in
    // the first half of a pause and wait for the rest of it.
    let started = Instant::now();
    let mut longest = Duration::ZERO;
    for i in 0..2_000u64 {
        if started.elapsed() > Duration::from_millis(1500) {
            break;
        }
        let m = wsbench_message(i, 32, false);
        let t = Instant::now();
        ws.send(Message::binary(m.clone())).await.expect("send");
        assert_eq!(next(&mut ws).await, Some(Message::binary(m)));
        longest = longest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // A lower bound only: a pause must delay, however fast the machine.
    assert!(
        longest >= Duration::from_millis(40),
        "no echo was held by a pause; longest round trip {longest:?}"
    );
    let body = http_get(server.addr, "/metrics").await;
    assert!(metric(&body, "wsbench_server_pauses_total") >= 2, "{body}");
    close(ws).await;
    let (status, took, _) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn a_port_in_use_is_one_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("addr");
    let out = timeout(
        STEP,
        Command::new(BIN)
            .args(["--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("exit in time")
    .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("wsbench server: cannot listen on {addr}: Address already in use\n")
    );
}

#[tokio::test]
async fn options_that_do_not_go_together_exit_2() {
    for args in [
        &["--pause-every", "1s"][..],
        &["--pause-every", "50ms", "--pause-for", "1s"],
        &["--workers", "0"],
    ] {
        let out = timeout(
            STEP,
            Command::new(BIN)
                .args(["--listen", "127.0.0.1:0"])
                .args(args)
                .stdin(Stdio::null())
                .output(),
        )
        .await
        .expect("exit in time")
        .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("wsbench server: --"), "{err}");
    }
}
