//! End-to-end tests of `wsbench-server --engine zero-alloc` on 127.0.0.1, port 0.
//!
//! A tokio-tungstenite client checks what a well-behaved peer sees (echoes of every size and
//! shape, pings, the close handshake, going away on SIGTERM); a raw client built on
//! wsbench-core's codec sends what no library would (bad UTF-8, bad close codes, unmasked or
//! reserved-bit frames, frames cut into single bytes) and checks the close code each earns.
//! Every await has a timeout and every loop a bound; nothing asserts on speed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use wsbench_core::codec::close;
use wsbench_core::layout::SERVER_SUMMARY;
use wsbench_core::result::ServerSummary;

mod common;

use common::{client_frame, Client, RawClient, ServerProcess, STEP};

impl ServerProcess {
    async fn start_zero_alloc(args: &[&str]) -> Self {
        let mut all = vec!["--engine", "zero-alloc"];
        all.extend_from_slice(args);
        Self::start(&all).await
    }

    async fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let status = timeout(STEP, self.child.wait())
            .await
            .expect("exit in time")
            .expect("wait");
        assert!(status.success(), "{status}");
    }

    async fn protocol_errors(&self) -> u64 {
        self.metric("wsbench_server_protocol_errors_total").await
    }
}

async fn next(ws: &mut Client) -> Option<Message> {
    match timeout(STEP, ws.next()).await.expect("a message in time") {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => panic!("client read failed: {e}"),
        None => None,
    }
}

/// Reads until the stream ends (after a close), within bounds.
async fn read_to_end(ws: &mut Client) {
    for _ in 0..100 {
        match timeout(STEP, ws.next()).await.expect("end in time") {
            Some(Ok(_)) => continue,
            _ => return,
        }
    }
    panic!("no end of stream");
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn echoes_text_binary_empty_and_pipelined_messages() {
    let server = ServerProcess::start_zero_alloc(&[]).await;
    let mut ws = server.connect().await;
    for m in [
        Message::text("hello, zero-alloc"),
        Message::text("κόσμε €𝄞"),
        Message::text(""),
        Message::binary(pattern(256, 1)),
        Message::binary(Vec::new()),
        Message::binary(pattern(70_000, 2)),
    ] {
        ws.send(m.clone()).await.expect("send");
        assert_eq!(next(&mut ws).await, Some(m));
    }
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .expect("ping");
    assert_eq!(
        next(&mut ws).await,
        Some(Message::Pong(b"are you there".to_vec().into()))
    );
    // Pipelined, mixed sizes: everything comes back whole and in order.
    let sent: Vec<Message> = (0..300usize)
        .map(|i| match i % 3 {
            0 => Message::binary(pattern(i * 37 % 2000, i as u8)),
            1 => Message::text("x".repeat(i)),
            _ => Message::binary(pattern(i * 301, i as u8)),
        })
        .collect();
    for m in &sent {
        ws.feed(m.clone()).await.expect("feed");
    }
    ws.flush().await.expect("flush");
    for m in &sent {
        assert_eq!(next(&mut ws).await.as_ref(), Some(m));
    }
    ws.close(None).await.expect("close");
    read_to_end(&mut ws).await;
    assert_eq!(server.protocol_errors().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn large_and_fragmented_messages_are_echoed_whole() {
    let server = ServerProcess::start_zero_alloc(&[]).await;
    let mut ws = server.connect().await;
    let mib = 1 << 20;
    let big = pattern(mib, 3);
    ws.send(Message::binary(big.clone())).await.expect("send");
    assert_eq!(next(&mut ws).await, Some(Message::binary(big.clone())));
    let text = "ab€".repeat(mib / 5);
    ws.send(Message::text(text.clone())).await.expect("send");
    assert_eq!(next(&mut ws).await, Some(Message::text(text.clone())));

    // A text message in fragments, cut inside a character, with a ping between fragments.
    let euro = "€".as_bytes();
    let parts: [&[u8]; 3] = [b"frag\xe2", &euro[1..2], b"\xacments"];
    ws.send(Message::Frame(WsFrame::message(
        parts[0].to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .expect("first fragment");
    ws.send(Message::Ping(b"between".to_vec().into()))
        .await
        .expect("ping");
    ws.send(Message::Frame(WsFrame::message(
        parts[1].to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .await
    .expect("second fragment");
    ws.send(Message::Frame(WsFrame::message(
        parts[2].to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .expect("last fragment");
    assert_eq!(
        next(&mut ws).await,
        Some(Message::Pong(b"between".to_vec().into()))
    );
    assert_eq!(next(&mut ws).await, Some(Message::text("frag€ments")));

    // 1 MiB binary in four 256 KiB fragments (each larger than the shared read buffer).
    let quarter = mib / 4;
    for i in 0..4 {
        let op = if i == 0 { Data::Binary } else { Data::Continue };
        let chunk = big[i * quarter..(i + 1) * quarter].to_vec();
        ws.send(Message::Frame(WsFrame::message(
            chunk,
            OpCode::Data(op),
            i == 3,
        )))
        .await
        .expect("fragment");
    }
    assert_eq!(next(&mut ws).await, Some(Message::binary(big)));
    // And the connection goes on with small messages afterwards.
    ws.send(Message::text("after")).await.expect("send");
    assert_eq!(next(&mut ws).await, Some(Message::text("after")));
    ws.close(None).await.expect("close");
    read_to_end(&mut ws).await;
    server.stop().await;
}

#[tokio::test]
async fn the_close_handshake_echoes_the_code() {
    let server = ServerProcess::start_zero_alloc(&[]).await;
    for code in [1000u16, 1001, 3000, 4999] {
        let mut ws = server.connect().await;
        ws.close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "bye".into(),
        }))
        .await
        .expect("close");
        match next(&mut ws).await {
            Some(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), code),
            other => panic!("expected the close echoed, got {other:?}"),
        }
        read_to_end(&mut ws).await;
    }
    // A close without a status code is answered without one.
    let mut raw = RawClient::connect(server.addr, &[]).await;
    raw.send(&client_frame(0x88, &[])).await;
    assert_eq!(raw.frame().await, Some((0x8, true, Vec::new())));
    assert_eq!(raw.frame().await, None);
    assert_eq!(server.protocol_errors().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn protocol_violations_close_with_the_code_they_earn() {
    let server = ServerProcess::start_zero_alloc(&["--max-message-size", "1KiB"]).await;
    let mut bad_close = vec![0x03, 0xed]; // 1005 must not be sent
    bad_close.extend_from_slice(b"x");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "invalid UTF-8 text",
            client_frame(0x81, b"ok\xc0\xaf"),
            1007,
        ),
        (
            "text ending inside a character",
            client_frame(0x81, b"\xe2\x82"),
            1007,
        ),
        ("reserved bits", client_frame(0xC2, b"x"), 1002),
        ("reserved opcode", client_frame(0x83, b"x"), 1002),
        (
            "continuation without a message",
            client_frame(0x80, b"x"),
            1002,
        ),
        ("fragmented ping", client_frame(0x09, b"x"), 1002),
        ("1-byte close payload", client_frame(0x88, &[0x03]), 1002),
        ("close code 1005", client_frame(0x88, &bad_close), 1002),
        (
            "close reason not UTF-8",
            client_frame(0x88, b"\x03\xe8\xff"),
            1007,
        ),
        ("unmasked frame", vec![0x82, 0x01, b'x'], 1002),
        (
            "message over the limit",
            client_frame(0x82, &[7u8; 1025]),
            1009,
        ),
    ];
    let count = cases.len() as u64;
    for (what, frame, code) in cases {
        let mut raw = RawClient::connect(server.addr, &[]).await;
        raw.send(&frame).await;
        let (op, _, payload) = raw
            .frame()
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(op, 0x8, "{what}");
        let got = close::parse(&payload).expect("valid close").map(|c| c.code);
        assert_eq!(got, Some(code), "{what}");
        raw.send(&client_frame(0x88, &payload[..2])).await;
        assert_eq!(
            raw.frame().await,
            None,
            "{what}: the server ends the stream"
        );
    }
    // Fragments that add up to more than the limit, with a valid message first.
    let mut raw = RawClient::connect(server.addr, &[]).await;
    raw.send(&client_frame(0x82, &[1u8; 1024])).await;
    let (op, _, echo) = raw.frame().await.expect("the limit itself is allowed");
    assert_eq!((op, echo.len()), (0x2, 1024));
    raw.send(&client_frame(0x02, &[1u8; 600])).await;
    raw.send(&client_frame(0x80, &[1u8; 600])).await;
    raw.expect_close(1009).await;
    assert_eq!(server.protocol_errors().await, count + 1);
    server.stop().await;
}

#[tokio::test]
async fn frames_cut_anywhere_and_the_first_frame_in_the_upgrade_write_are_served() {
    let server = ServerProcess::start_zero_alloc(&[]).await;
    // The first frame rides in the same write as the request head.
    let first = client_frame(0x82, b"right behind the head");
    let mut raw = RawClient::connect(server.addr, &first).await;
    assert_eq!(
        raw.frame().await,
        Some((0x2, true, b"right behind the head".to_vec()))
    );
    // Two frames sent one byte at a time.
    let mut bytes = client_frame(0x81, "byte by byte €".as_bytes());
    bytes.extend(client_frame(0x82, &pattern(300, 9)));
    for b in &bytes {
        raw.send(std::slice::from_ref(b)).await;
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    assert_eq!(
        raw.frame().await,
        Some((0x1, true, "byte by byte €".as_bytes().to_vec()))
    );
    assert_eq!(raw.frame().await, Some((0x2, true, pattern(300, 9))));
    raw.send(&client_frame(0x88, &[0x03, 0xe8])).await;
    assert_eq!(raw.frame().await, Some((0x8, true, vec![0x03, 0xe8])));
    assert_eq!(raw.frame().await, None);
    server.stop().await;
}

#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_writes_the_results() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wsbench-zero-alloc-sigterm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server =
        ServerProcess::start_zero_alloc(&["--out", dir.to_str().expect("UTF-8 dir")]).await;
    let mut ws = server.connect().await;
    let mut idle = server.connect().await;
    for i in 0..5u8 {
        ws.send(Message::binary(pattern(48, i)))
            .await
            .expect("send");
        assert_eq!(next(&mut ws).await, Some(Message::binary(pattern(48, i))));
    }
    server.signal(libc::SIGTERM);
    for client in [&mut ws, &mut idle] {
        match next(client).await {
            Some(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
        read_to_end(client).await;
    }
    let mut server = server;
    let status = timeout(STEP, server.child.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    assert!(status.success(), "{status}");
    let summary: ServerSummary = serde_json::from_str(
        &std::fs::read_to_string(dir.join(SERVER_SUMMARY)).expect("server.json written"),
    )
    .expect("a ServerSummary");
    assert_eq!(summary.config.engine.name(), "zero-alloc");
    assert_eq!(summary.counts.connections_accepted, 2);
    assert_eq!(
        (summary.counts.messages_in, summary.counts.messages_out),
        (5, 5)
    );
    assert_eq!(
        (summary.counts.bytes_in, summary.counts.bytes_out),
        (240, 240)
    );
    assert_eq!(summary.counts.protocol_errors, 0);
    std::fs::remove_dir_all(&dir).ok();
}
