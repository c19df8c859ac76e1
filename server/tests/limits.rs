//! End-to-end tests of the server's limits, on both engines, against the real binary on
//! 127.0.0.1 port 0: memory follows bytes received (claimed frames, the partial-message
//! budget), the read timeout, keep-alive, the write high-water mark, `--max-connections`, and
//! the 1002 answer to a 64-bit length with its top bit set.
//!
//! Memory is checked through `/metrics` (the budget in use, exact) and through the server's
//! resident memory with bounds loose enough for a noisy machine: the faults they catch cost
//! hundreds of MiB. Timeouts are set to 1 s and awaited within generous bounds; nothing asserts
//! on speed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use wsbench_core::codec::{close, Opcode};

mod common;

use common::{client_frame, RawClient, ServerProcess, STEP};

const ENGINES: [&str; 2] = ["zero-alloc", "tungstenite"];

/// The declared length of a claimed frame: just under the default 16 MiB message limit.
const CLAIMED: u64 = 16_777_000;

async fn start(engine: &str, args: &[&str]) -> ServerProcess {
    let mut all = vec!["--engine", engine];
    all.extend_from_slice(args);
    ServerProcess::start(&all).await
}

/// The header of a masked binary frame declaring `len` bytes (64-bit length form).
fn claim_header(len: u64) -> Vec<u8> {
    let mut h = vec![0x82, 0x80 | 127];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[1, 2, 3, 4]);
    h
}

/// Reads frames until a close frame and returns its code, or `None` if the stream ended
/// without one. Bounded by the frames' own timeouts and a count.
async fn close_code(c: &mut RawClient) -> Option<u16> {
    for _ in 0..100_000 {
        let (op, _, payload) = c.frame().await?;
        if op == Opcode::Close.bits() {
            return close::parse(&payload).ok().flatten().map(|c| c.code);
        }
    }
    panic!("no close frame within 100,000 frames");
}

/// Polls `metric` until `wanted` holds for it, within `within`.
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

#[tokio::test]
async fn claimed_frames_cost_the_bytes_sent_not_the_bytes_claimed() {
    for engine in ENGINES {
        let server = start(engine, &[]).await;
        let base = server.rss_kib();
        // Two rounds: freed memory reused for a claimed length is where claims used to hurt.
        for round in 0..2 {
            let mut clients = Vec::new();
            for _ in 0..50 {
                let mut c = RawClient::connect(server.addr, &[]).await;
                let mut frame = claim_header(CLAIMED);
                frame.extend_from_slice(&[7u8; 100]);
                c.send(&frame).await;
                clients.push(c);
            }
            // zero-alloc charges every byte held, so the budget shows when all have arrived;
            // tungstenite charges only what exceeds its 8 KiB read buffer, so give it time.
            if engine == "zero-alloc" {
                wait_metric(&server, "wsbench_server_buffered_bytes", |v| v >= 50 * 100).await;
            } else {
                sleep(Duration::from_millis(500)).await;
            }
            let buffered = server.metric("wsbench_server_buffered_bytes").await;
            assert!(
                buffered <= 50 * 64 * 1024,
                "{engine} round {round}: {buffered} bytes charged for 5,000 received"
            );
            let held = server.rss_kib();
            // 50 claims of 16 MB would be 800 MiB; 50 connections of either engine are < 2 MiB.
            assert!(
                held < base + 64 * 1024,
                "{engine} round {round}: RSS {base} KiB -> {held} KiB"
            );
            drop(clients);
            wait_metric(&server, "wsbench_server_connections_open", |v| v == 0).await;
        }
        // Closed connections give their charge back.
        wait_metric(&server, "wsbench_server_buffered_bytes", |v| v == 0).await;
    }
}

#[tokio::test]
async fn the_connection_that_would_spend_the_budget_is_closed_with_1008() {
    for engine in ENGINES {
        let server = start(engine, &["--max-buffered", "1MiB"]).await;
        let chunk = vec![9u8; 256 * 1024];
        let mut clients = Vec::new();
        let mut refused = None;
        // Each client sends 256 KiB of a claimed 16 MB frame: the fifth cannot fit in 1 MiB.
        for i in 0..8 {
            let mut c = RawClient::connect(server.addr, &claim_header(CLAIMED)).await;
            c.send(&chunk).await;
            sleep(Duration::from_millis(200)).await;
            if server
                .metric("wsbench_server_closed_over_budget_total")
                .await
                > 0
            {
                refused = Some((i, c));
                break;
            }
            clients.push(c);
        }
        let (i, mut c) = refused.unwrap_or_else(|| panic!("{engine}: the budget never refused"));
        assert!(
            i >= 2,
            "{engine}: refused the client number {i} of 256 KiB each"
        );
        assert_eq!(close_code(&mut c).await, Some(1008), "{engine}");
        assert!(server.metric("wsbench_server_buffered_bytes").await <= 1 << 20);
    }
}

/// A zero-alloc connection keeps its large-message buffer between messages (charged to the
/// budget, so `/metrics` shows it), and gives it back once quiet: by being parked, or, when
/// it is never parked (`--park-after 0s`), after a second of quiet all the same. Either way it
/// serves the next large message again, and the server's memory goes back down.
#[tokio::test]
async fn a_quiet_connection_gives_its_large_buffer_back() {
    const LARGE: usize = 4 << 20;
    for args in [&[][..], &["--park-after", "0s"][..]] {
        let server = start("zero-alloc", args).await;
        let base = server.rss_kib();
        let mut ws = server.connect().await;
        for round in 0..2u8 {
            let payload = vec![round; LARGE];
            ws.send(Message::binary(payload.clone()))
                .await
                .expect("send");
            let echo = timeout(STEP, ws.next()).await.expect("echo in time");
            assert_eq!(echo.expect("open").expect("echo"), Message::binary(payload));
            wait_metric(&server, "wsbench_server_buffered_bytes", |v| {
                v >= LARGE as u64
            })
            .await;
            let kept = server.rss_kib();
            assert!(
                kept >= base + 3 * 1024,
                "{args:?} round {round}: RSS {base} KiB -> {kept} KiB with a 4 MiB buffer kept"
            );
            // Quiet for a second: the buffer goes, and its pages with it.
            wait_metric(&server, "wsbench_server_buffered_bytes", |v| v == 0).await;
            let until = Instant::now() + STEP;
            while server.rss_kib() > kept - 3 * 1024 {
                assert!(
                    Instant::now() < until,
                    "{args:?}: RSS stays at {} KiB",
                    server.rss_kib()
                );
                sleep(Duration::from_millis(100)).await;
            }
            let parked = server.metric("wsbench_server_sockets_parked").await;
            assert_eq!(parked, u64::from(args.is_empty()), "{args:?}");
        }
    }
}

/// Kept buffers give way to a budget under pressure: once the budget has refused a
/// connection, one that kept a large buffer gives it back, long before it would count as
/// quiet (`--park-after 60s`): at its next turn (a small message), or, streaming, when the
/// buffer comes back from the large message that used it. The buffer of the large message
/// after that is kept again.
#[tokio::test]
async fn kept_buffers_are_given_back_when_the_budget_refuses_anyone() {
    const LARGE: usize = 3 << 20;
    const BUFFERED: &str = "wsbench_server_buffered_bytes";
    let server = start(
        "zero-alloc",
        &["--max-buffered", "8MiB", "--park-after", "60s"],
    )
    .await;
    let mut ws = server.connect().await;
    let mut echo = async |payload: Vec<u8>| {
        ws.send(Message::binary(payload.clone()))
            .await
            .expect("send");
        let echo = timeout(STEP, ws.next()).await.expect("echo in time");
        assert_eq!(echo.expect("open").expect("echo"), Message::binary(payload));
    };
    // 6 MiB of a claimed 16 MB frame on top of the 3 MiB kept: past 8 MiB, refused.
    let refuse = async || {
        let mut claimer = RawClient::connect(server.addr, &claim_header(CLAIMED)).await;
        claimer.send(&vec![9u8; 6 << 20]).await;
        assert_eq!(close_code(&mut claimer).await, Some(1008));
    };
    for next in [vec![0; 15], vec![3; LARGE]] {
        echo(vec![1; LARGE]).await;
        wait_metric(&server, BUFFERED, |v| v >= LARGE as u64).await;
        refuse().await;
        echo(next).await;
        wait_metric(&server, BUFFERED, |v| v == 0).await;
    }
    echo(vec![2; LARGE]).await;
    wait_metric(&server, BUFFERED, |v| v >= LARGE as u64).await;
}

#[tokio::test]
async fn half_a_message_then_silence_is_closed_with_1008_after_the_read_timeout() {
    for engine in ENGINES {
        let server = start(engine, &["--read-timeout", "1s"]).await;
        let mut idle = RawClient::connect(server.addr, &[]).await;
        let mut c = RawClient::connect(server.addr, &[]).await;
        let frame = client_frame(0x82, &[5u8; 1000]);
        c.send(&frame[..500]).await;
        let t0 = Instant::now();
        assert_eq!(close_code(&mut c).await, Some(1008), "{engine}");
        assert!(t0.elapsed() < STEP, "{engine}");
        assert_eq!(
            server
                .metric("wsbench_server_closed_read_timeout_total")
                .await,
            1,
            "{engine}"
        );
        // A connection with nothing half-sent is not subject to the read timeout.
        idle.send(&client_frame(0x82, b"still here")).await;
        let (op, _, payload) = idle.frame().await.expect("an echo");
        assert_eq!(
            (op, payload.as_slice()),
            (Opcode::Binary.bits(), &b"still here"[..])
        );
    }
}

#[tokio::test]
async fn a_silent_peer_is_pinged_and_dropped_and_a_pong_keeps_it() {
    for engine in ENGINES {
        let server = start(engine, &["--ping-interval", "1s", "--pong-timeout", "1s"]).await;
        // tungstenite's client answers pings as it reads: it stays.
        let mut alive = server.connect().await;
        // A raw client that reads but never answers, watched on its own task meanwhile.
        let addr = server.addr;
        let silent = tokio::spawn(async move {
            let mut silent = RawClient::connect(addr, &[]).await;
            let (op, _, _) = silent.frame().await.expect("a ping");
            assert_eq!(op, Opcode::Ping.bits());
            close_code(&mut silent).await
        });
        // Four ping periods of reading (and so answering).
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            match timeout(Duration::from_millis(200), alive.next()).await {
                Err(_) => {}
                Ok(Some(Ok(Message::Ping(_)))) => {}
                Ok(other) => panic!("{engine}: {other:?}"),
            }
        }
        let code = timeout(STEP, silent)
            .await
            .expect("in time")
            .expect("no panic");
        assert_eq!(code, Some(1011), "{engine}");
        assert_eq!(
            server
                .metric("wsbench_server_closed_pong_timeout_total")
                .await,
            1,
            "{engine}: only the silent client is dropped"
        );
        alive.send(Message::binary(&b"hello"[..])).await.unwrap();
        let echo = loop {
            match timeout(STEP, alive.next()).await.expect("echo in time") {
                Some(Ok(Message::Ping(_))) => continue,
                other => break other,
            }
        };
        assert!(
            matches!(echo, Some(Ok(Message::Binary(ref b))) if b.as_ref() == b"hello"),
            "{echo:?}"
        );
    }
}

#[tokio::test]
async fn a_client_that_never_reads_cannot_grow_the_server() {
    // Both engines: replies queue up to the high-water mark while reading goes on, then the
    // client is closed with 1008 and counted (not left to the keep-alive, which is off here).
    for engine in ENGINES {
        let server = start(
            engine,
            &["--max-write-buffer", "256KiB", "--ping-interval", "0s"],
        )
        .await;
        let base = server.rss_kib();
        let mut c = RawClient::connect(server.addr, &[]).await;
        let frame = client_frame(0x82, &[3u8; 1024]);
        let burst: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 256)
            .collect();
        // Up to 64 MiB of messages, never reading; the server stops taking them once it closed us.
        for _ in 0..256 {
            match timeout(Duration::from_secs(2), c.stream.write_all(&burst)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break,
            }
            if server
                .metric("wsbench_server_closed_slow_consumer_total")
                .await
                > 0
            {
                break;
            }
        }
        wait_metric(&server, "wsbench_server_closed_slow_consumer_total", |v| {
            v == 1
        })
        .await;
        assert!(
            server.rss_kib() < base + 32 * 1024,
            "{engine}: RSS {base} KiB -> {}",
            server.rss_kib()
        );
        // What the client finally reads: echoes, then the close.
        assert_eq!(close_code(&mut c).await, Some(1008), "{engine}");
        assert_eq!(
            server.metric("wsbench_server_closed_pong_timeout_total").await,
            0,
            "{engine}"
        );
    }
}

#[tokio::test]
async fn sockets_beyond_max_connections_get_503() {
    for engine in ENGINES {
        let server = start(engine, &["--max-connections", "2"]).await;
        let a = RawClient::connect(server.addr, &[]).await;
        let b = TcpStream::connect(server.addr).await.unwrap();
        // Accepted by now (a's upgrade was answered); b is a pending handshake.
        sleep(Duration::from_millis(300)).await;
        let mut c = TcpStream::connect(server.addr).await.unwrap();
        let mut answer = String::new();
        timeout(STEP, c.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{engine}: {answer}");
        assert!(answer.contains("--max-connections"), "{answer}");
        // /metrics itself is refused while full; count once slots are free.
        drop((a, b));
        // Until the server has seen both go, /metrics itself would be refused.
        sleep(Duration::from_millis(500)).await;
        // The /metrics request is a socket too.
        wait_metric(&server, "wsbench_server_sockets_open", |v| v == 1).await;
        assert_eq!(server.metric("wsbench_server_refused_busy_total").await, 1);
    }
}

#[tokio::test]
async fn a_64_bit_length_with_its_top_bit_set_is_a_protocol_error() {
    for engine in ENGINES {
        let server = start(engine, &[]).await;
        let mut c = RawClient::connect(server.addr, &claim_header(1 << 63)).await;
        assert_eq!(close_code(&mut c).await, Some(1002), "{engine}");
    }
}

#[tokio::test]
async fn limits_are_in_help_and_server_json() {
    let out = std::process::Command::new(common::BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--max-message-size",
        "--max-buffered",
        "--read-timeout",
        "--ping-interval",
        "--pong-timeout",
        "--close-timeout",
        "--handshake-timeout",
        "--max-write-buffer",
        "--max-connections",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let dir = std::env::temp_dir().join(format!("wsbench-limits-{}", std::process::id()));
    let server = start(
        "zero-alloc",
        &["--out", dir.to_str().unwrap(), "--read-timeout", "7s"],
    )
    .await;
    server.signal(libc::SIGTERM);
    let mut child = server.child;
    timeout(STEP, child.wait()).await.unwrap().unwrap();
    let text = std::fs::read_to_string(dir.join(wsbench_core::layout::SERVER_SUMMARY)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let limits = &v["config"]["limits"];
    assert_eq!(limits["read_timeout"], "7s");
    assert_eq!(limits["max_buffered"], 256 << 20);
    assert!(limits["max_connections"].as_u64().unwrap() >= 1);
    assert_eq!(v["limits_reached"]["over_budget"], 0);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn handshakes_and_closing_handshakes_that_never_finish_are_dropped_and_counted() {
    for engine in ENGINES {
        let server = start(
            engine,
            &[
                "--handshake-timeout",
                "1s",
                "--read-timeout",
                "1s",
                "--close-timeout",
                "1s",
            ],
        )
        .await;
        // No request head at all: the server hangs up after the handshake timeout.
        let mut mute = TcpStream::connect(server.addr).await.unwrap();
        let mut sink = [0u8; 64];
        let n = timeout(STEP, mute.read(&mut sink))
            .await
            .expect("hung up in time");
        assert!(matches!(n, Ok(0) | Err(_)), "{engine}: {n:?}");
        assert_eq!(
            server
                .metric("wsbench_server_handshake_timeouts_total")
                .await,
            1
        );

        // A read timeout's close frame, never answered: dropped after the close timeout.
        let mut c = RawClient::connect(server.addr, &client_frame(0x82, &[1u8; 100])[..50]).await;
        assert_eq!(close_code(&mut c).await, Some(1008), "{engine}");
        assert_eq!(c.frame().await, None, "{engine}: the server hangs up");
        wait_metric(&server, "wsbench_server_close_timeouts_total", |v| v == 1).await;
    }
}

#[tokio::test]
async fn a_head_that_trickles_in_is_answered_and_silent_sockets_do_not_hold_up_shutdown() {
    for engine in ENGINES {
        let mut server = start(engine, &["--handshake-timeout", "10s"]).await;
        // Pending handshakes wait for their first bytes without a buffer; none of them may be
        // lost or counted as anything yet.
        let mut silent = Vec::new();
        for _ in 0..50 {
            silent.push(TcpStream::connect(server.addr).await.unwrap());
        }
        // The first bytes wake a pending handshake (they are peeked, not consumed), the rest
        // follow a few at a time.
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        for chunk in head.chunks(5) {
            s.write_all(chunk).await.unwrap();
            sleep(Duration::from_millis(20)).await;
        }
        let mut answer = String::new();
        timeout(STEP, s.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 "), "{engine}: {answer}");
        // The 50 silent sockets and the /metrics request itself.
        wait_metric(&server, "wsbench_server_sockets_open", |v| v == 51).await;
        assert_eq!(
            server
                .metric("wsbench_server_handshake_timeouts_total")
                .await,
            0
        );
        // Shutdown does not wait out their handshake timeout.
        server.signal(libc::SIGTERM);
        let status = timeout(STEP, server.child.wait())
            .await
            .expect("exited within the bound")
            .unwrap();
        assert!(status.success(), "{engine}: {status}");
        drop(silent);
    }
}
