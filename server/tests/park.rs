//! End-to-end tests of parking, against the real binary on 127.0.0.1 port 0: sockets that wait
//! without a task (a pending handshake until its first bytes, a zero-alloc connection quiet for
//! a second) are seen in `/metrics` (`wsbench_server_sockets_parked`), come back when their
//! client speaks, keep their keep-alive and are closed with 1001 on shutdown like any other.
//! Every wait is bounded; nothing asserts on speed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::{Client, ServerProcess, STEP};

const PARKED: &str = "wsbench_server_sockets_parked";

/// Polls `metric` until `wanted` holds for it, within [`STEP`].
async fn wait_metric(server: &ServerProcess, metric: &str, wanted: impl Fn(u64) -> bool) {
    let until = Instant::now() + STEP;
    loop {
        let v = server.metric(metric).await;
        if wanted(v) {
            return;
        }
        assert!(Instant::now() < until, "{metric} is still {v}");
        sleep(Duration::from_millis(100)).await;
    }
}

/// The next data or close message, skipping pings (tungstenite answers them as it reads).
async fn next(ws: &mut Client) -> Option<Message> {
    loop {
        match timeout(STEP, ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(m)) => return Some(m),
            Some(Err(_)) | None => return None,
        }
    }
}

async fn echo(ws: &mut Client, payload: Vec<u8>) {
    ws.send(Message::binary(payload.clone()))
        .await
        .expect("send");
    assert_eq!(next(ws).await, Some(Message::binary(payload)));
}

#[tokio::test]
async fn quiet_connections_are_parked_served_again_and_closed_with_1001() {
    const N: usize = 20;
    let mut server = ServerProcess::start(&["--engine", "zero-alloc"]).await;
    let mut clients = Vec::new();
    for i in 0..N {
        let mut ws = server.connect().await;
        echo(&mut ws, vec![i as u8; 40]).await;
        clients.push(ws);
    }
    // Quiet for a second, every connection leaves its task.
    wait_metric(&server, PARKED, |v| v == N as u64).await;
    assert_eq!(
        server.metric("wsbench_server_connections_open").await,
        N as u64
    );
    // Each comes back as its client speaks: a small message, then one larger than a read.
    for (i, ws) in clients.iter_mut().enumerate() {
        echo(ws, vec![i as u8 + 100; 33]).await;
        echo(ws, (0..200_000u32).map(|b| (b % 251) as u8).collect()).await;
    }
    assert_eq!(
        server
            .metric("wsbench_server_messages_received_total")
            .await,
        3 * N as u64
    );
    // And leaves again.
    wait_metric(&server, PARKED, |v| v == N as u64).await;
    server.signal(libc::SIGTERM);
    for ws in &mut clients {
        match next(ws).await {
            Some(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    let status = timeout(STEP, server.child.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn park_after_zero_keeps_quiet_connections_in_their_tasks() {
    // For sparse loads that must stay allocation-free: waking a parked connection allocates.
    const N: usize = 5;
    let server = ServerProcess::start(&["--engine", "zero-alloc", "--park-after", "0s"]).await;
    let mut clients = Vec::new();
    for i in 0..N {
        let mut ws = server.connect().await;
        echo(&mut ws, vec![i as u8; 40]).await;
        clients.push(ws);
    }
    // Twice the default park-after with nothing sent: none of them left its task.
    sleep(Duration::from_secs(2)).await;
    assert_eq!(server.metric(PARKED).await, 0);
    for ws in &mut clients {
        echo(ws, vec![7; 33]).await;
    }
    assert_eq!(
        server.metric("wsbench_server_connections_open").await,
        N as u64
    );
}

#[tokio::test]
async fn pending_handshakes_are_parked_until_their_first_bytes() {
    for engine in ["zero-alloc", "tungstenite"] {
        let server = ServerProcess::start(&["--engine", engine]).await;
        let mut silent = Vec::new();
        for _ in 0..30 {
            silent.push(TcpStream::connect(server.addr).await.unwrap());
        }
        // The 30 silent sockets; /metrics requests come with their first bytes, never parked.
        wait_metric(&server, PARKED, |v| v == 30).await;
        // One of them speaks at last: it is served as any socket.
        let mut s = silent.pop().unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        timeout(STEP, s.read_to_string(&mut answer))
            .await
            .expect("answered in time")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 "), "{engine}: {answer}");
        wait_metric(&server, PARKED, |v| v == 29).await;
        assert_eq!(
            server
                .metric("wsbench_server_handshake_timeouts_total")
                .await,
            0,
            "{engine}"
        );
        // A WebSocket client is served whether or not its request was there at accept.
        let mut ws = server.connect().await;
        echo(&mut ws, b"hello, parked world".to_vec()).await;
    }
}

#[tokio::test]
async fn a_parked_pending_handshake_times_out_and_is_counted() {
    let server =
        ServerProcess::start(&["--engine", "zero-alloc", "--handshake-timeout", "1s"]).await;
    let mut mute = TcpStream::connect(server.addr).await.unwrap();
    wait_metric(&server, PARKED, |v| v == 1).await;
    let mut sink = [0u8; 16];
    let n = timeout(STEP, mute.read(&mut sink))
        .await
        .expect("hung up in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert_eq!(
        server
            .metric("wsbench_server_handshake_timeouts_total")
            .await,
        1
    );
    assert_eq!(server.metric(PARKED).await, 0);
    assert_eq!(
        server.metric("wsbench_server_sockets_open").await,
        1,
        "only /metrics itself"
    );
}
