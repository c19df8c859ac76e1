//! End-to-end tests of the gate, on both engines, against the real binary on 127.0.0.1 port 0:
//! a wrong origin gets 403, tokens missing (401), forged (403) and expired (401) are refused
//! and counted apart, a valid token connects and echoes, a peer past its burst gets 429, and
//! every refusal is in /metrics and server.json. Bad flags exit 2. Nothing asserts on speed;
//! the rate tests use a rate so slow (1/min) that no token comes back while they run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use wsbench_core::token::{unix_seconds, TokenSecret};

mod common;

use common::{ServerProcess, STEP};

const ENGINES: [&str; 2] = ["zero-alloc", "tungstenite"];
const SECRET: &[u8] = b"gate test secret, 32 bytes long\n";

async fn start(engine: &str, args: &[&str]) -> ServerProcess {
    let mut all = vec!["--engine", engine];
    all.extend_from_slice(args);
    ServerProcess::start(&all).await
}

/// A fresh folder for this test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsbench-gate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn secret_file(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("secret");
    std::fs::write(&path, SECRET).unwrap();
    path
}

/// Sends a WebSocket upgrade for `target` with `extra` headers and returns the answer's head
/// and, unless it is 101, its body (the server closes after a refusal).
async fn upgrade(addr: SocketAddr, target: &str, extra: &str) -> String {
    let mut s = timeout(STEP, TcpStream::connect(addr)).await.unwrap().unwrap();
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    for _ in 0..64 {
        let n = timeout(STEP, s.read(&mut chunk)).await.unwrap().unwrap();
        answer.extend_from_slice(&chunk[..n]);
        let head_done = answer.windows(4).any(|w| w == b"\r\n\r\n");
        if n == 0 || (head_done && answer.starts_with(b"HTTP/1.1 101 ")) {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The body of a plain GET.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = timeout(STEP, TcpStream::connect(addr)).await.unwrap().unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    timeout(STEP, s.read_to_string(&mut answer)).await.unwrap().unwrap();
    answer
}

/// Stops the server and reads its server.json.
async fn finish(server: ServerProcess, dir: &std::path::Path) -> serde_json::Value {
    server.signal(libc::SIGTERM);
    let mut child = server.child;
    let status = timeout(STEP, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(dir.join(wsbench_core::layout::SERVER_SUMMARY)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_wrong_origin_gets_403_and_a_listed_or_absent_one_connects() {
    for engine in ENGINES {
        let dir = scratch(&format!("origin-{engine}"));
        let server = start(
            engine,
            &["--allow-origin", "https://a.example", "--allow-origin", "http://b.example:8080", "--out", dir.to_str().unwrap()],
        )
        .await;
        let evil = upgrade(server.addr, "/", "Origin: https://evil.example\r\n").await;
        assert!(evil.starts_with("HTTP/1.1 403 "), "{engine}: {evil}");
        assert!(evil.contains("--allow-origin"), "{evil}");
        // Same host, another scheme is another origin.
        let http = upgrade(server.addr, "/", "Origin: http://a.example\r\n").await;
        assert!(http.starts_with("HTTP/1.1 403 "), "{engine}: {http}");
        for ok in ["Origin: https://a.example\r\n", "Origin: HTTP://B.example:8080\r\n", ""] {
            let answer = upgrade(server.addr, "/", ok).await;
            assert!(answer.starts_with("HTTP/1.1 101 "), "{engine} {ok:?}: {answer}");
        }
        assert_eq!(server.metric("wsbench_server_refused_origin_total").await, 2);
        let v = finish(server, &dir).await;
        assert_eq!(v["limits_reached"]["refused_origin"], 2, "{engine}");
        assert_eq!(v["config"]["gate"]["allow_origins"][1], "http://b.example:8080");
        assert_eq!(v["counts"]["connections_accepted"], 3);
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[tokio::test]
async fn tokens_missing_forged_and_expired_are_refused_and_counted_apart() {
    for engine in ENGINES {
        let dir = scratch(&format!("token-{engine}"));
        let secret_path = secret_file(&dir);
        let server = start(engine, &["--token-secret", secret_path.to_str().unwrap(), "--out", dir.to_str().unwrap()]).await;
        let secret = TokenSecret::from_bytes(SECRET).unwrap();
        let now = unix_seconds(SystemTime::now());

        let missing = upgrade(server.addr, "/", "").await;
        assert!(missing.starts_with("HTTP/1.1 401 "), "{engine}: {missing}");
        assert!(missing.contains("wsbench token"), "{missing}");

        let other = TokenSecret::from_bytes(b"not the server's secret at all").unwrap();
        let forged = [
            format!("/?token={}", other.mint("/", now + 60)),
            // Genuine, but for another path.
            format!("/?token={}", secret.mint("/room/1", now + 60)),
            "/?token=12345.abcdef".to_owned(),
        ];
        for target in &forged {
            let answer = upgrade(server.addr, target, "").await;
            assert!(answer.starts_with("HTTP/1.1 403 "), "{engine} {target}: {answer}");
        }

        let expired = format!("/?token={}", secret.mint("/", now - 10));
        let answer = upgrade(server.addr, &expired, "").await;
        assert!(answer.starts_with("HTTP/1.1 401 "), "{engine}: {answer}");
        assert!(answer.contains("expired"), "{answer}");

        // A valid token connects, and the connection echoes.
        let url = format!("ws://{}/?x=1&token={}", server.addr, secret.mint("/", now + 60));
        let (mut ws, _) = timeout(STEP, connect_async(url)).await.unwrap().unwrap();
        ws.send(Message::text("with a token")).await.unwrap();
        let echo = timeout(STEP, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echo, Message::text("with a token"));
        drop(ws);

        assert_eq!(server.metric("wsbench_server_refused_token_missing_total").await, 1);
        assert_eq!(server.metric("wsbench_server_refused_token_forged_total").await, 3);
        assert_eq!(server.metric("wsbench_server_refused_token_expired_total").await, 1);
        let v = finish(server, &dir).await;
        let reached = &v["limits_reached"];
        assert_eq!(
            (&reached["refused_token_missing"], &reached["refused_token_forged"], &reached["refused_token_expired"]),
            (&1.into(), &3.into(), &1.into()),
            "{engine}"
        );
        // The file is named, its contents never written.
        assert_eq!(v["config"]["gate"]["token_secret"], secret_path.to_str().unwrap());
        assert!(!serde_json::to_string(&v).unwrap().contains("gate test secret"));
        assert_eq!(v["counts"]["connections_accepted"], 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[tokio::test]
async fn a_peer_past_its_burst_gets_429_and_the_side_routes_stay_open() {
    for engine in ENGINES {
        let dir = scratch(&format!("rate-{engine}"));
        let server = start(engine, &["--conn-rate", "1/min", "--conn-burst", "3", "--out", dir.to_str().unwrap()]).await;
        for i in 0..3 {
            let answer = upgrade(server.addr, "/", "").await;
            assert!(answer.starts_with("HTTP/1.1 101 "), "{engine} upgrade {i}: {answer}");
        }
        let answer = upgrade(server.addr, "/", "").await;
        assert!(answer.starts_with("HTTP/1.1 429 "), "{engine}: {answer}");
        assert!(answer.contains("Retry-After: "), "{answer}");
        assert!(answer.contains("--conn-rate"), "{answer}");
        assert!(get(server.addr, "/healthz").await.starts_with("HTTP/1.1 200 "));
        assert_eq!(server.metric("wsbench_server_refused_rate_total").await, 1);
        let v = finish(server, &dir).await;
        assert_eq!(v["limits_reached"]["refused_rate"], 1, "{engine}");
        let gate = &v["config"]["gate"];
        assert_eq!((gate["conn_rate_per_s"].as_f64(), gate["conn_burst"].as_u64()), (Some(1.0 / 60.0), Some(3)));
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[tokio::test]
async fn the_client_page_is_served_with_a_token_that_opens_the_socket() {
    let dir = scratch("page");
    let secret_path = secret_file(&dir);
    let server = start("zero-alloc", &["--token-secret", secret_path.to_str().unwrap()]).await;
    let page = get(server.addr, "/client").await;
    assert!(page.starts_with("HTTP/1.1 200 "), "{page}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8"), "{page}");
    let token = page
        .split("const TOKEN = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries a token");
    let answer = upgrade(server.addr, &format!("/?token={token}"), "").await;
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    drop(server);

    let server = start("zero-alloc", &["--no-client-page"]).await;
    assert!(get(server.addr, "/client").await.starts_with("HTTP/1.1 404 "));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn gate_flags_are_in_help_and_bad_ones_exit_2() {
    let out = std::process::Command::new(common::BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--allow-origin", "--token-secret", "--conn-rate", "--conn-burst", "starts full", "--no-client-page"] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let dir = scratch("bad");
    let short = dir.join("short");
    std::fs::write(&short, "too short\n").unwrap();
    let missing = dir.join("missing");
    let cases: [(&[&str], &str); 5] = [
        (&["--token-secret", short.to_str().unwrap()], "at least 16"),
        (&["--token-secret", missing.to_str().unwrap()], "cannot read the token secret"),
        (&["--allow-origin", "a.example"], "not an origin"),
        (&["--conn-rate", "0/s"], "above 0"),
        (&["--conn-rate", "5/s", "--conn-burst", "0"], "--conn-burst"),
    ];
    for (args, says) in cases {
        let out = std::process::Command::new(common::BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} started a server");
    }
    std::fs::remove_dir_all(&dir).ok();
}
