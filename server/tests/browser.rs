//! The browser page (`GET /client`) in a real browser: headless Chromium loads it from the
//! real server on 127.0.0.1 port 0, with the token check and the connection rate limit on, and
//! the test reads the page's state through the DevTools protocol (also on 127.0.0.1) until the
//! page says it is done. The server must have counted every message the browser sent.
//!
//! Needs `chromium-headless-shell` (`apt-get install chromium-headless-shell`, or
//! `WSBENCH_CHROMIUM=/path/to/binary`); without it the test is `ignored` with that reason,
//! and under CI it fails instead.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::{ServerProcess, STEP};

/// Messages the page sends (its `?n=`), plus the summary it sends last.
const N: u64 = 200;
/// How long the page may take from launch to done: generous, on a shared machine.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("WSBENCH_CHROMIUM") {
        return p.into();
    }
    ["/usr/bin/chromium-headless-shell", "/usr/lib/chromium/chromium-headless-shell"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("CI must provide chromium-headless-shell (apt-get install chromium-headless-shell; or set WSBENCH_CHROMIUM)")
}

/// `GET path` on 127.0.0.1:`port`, the body. DevTools answers HTTP/1.1 only and keeps the
/// connection open, so the body is read by its Content-Length.
async fn http_get(port: u16, path: &str) -> String {
    let mut s = timeout(STEP, TcpStream::connect(("127.0.0.1", port))).await.unwrap().unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..256 {
        let n = timeout(STEP, s.read(&mut chunk)).await.unwrap().unwrap();
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()));
            if n == 0 || length.is_some_and(|len| body.len() >= len) {
                return body.to_owned();
            }
        }
        assert!(n != 0, "DevTools closed before a whole answer: {text}");
    }
    panic!("no whole DevTools answer in 256 reads");
}

#[tokio::test]
#[cfg_attr(not(chromium), ignore = "no headless Chromium here (apt-get install chromium-headless-shell; or set WSBENCH_CHROMIUM)")]
async fn the_browser_page_round_trips_and_the_server_counts_its_messages() {
    let dir = std::env::temp_dir().join(format!("wsbench-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "browser test secret, long enough\n").unwrap();
    let out = dir.join("out");
    let server = ServerProcess::start(&[
        "--engine",
        "zero-alloc",
        "--token-secret",
        secret.to_str().unwrap(),
        "--conn-rate",
        "1/min",
        "--conn-burst",
        "2",
        "--out",
        out.to_str().unwrap(),
    ])
    .await;

    let page = format!("http://{}/client?n={N}", server.addr);
    let mut browser = Command::new(chromium())
        .args([
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(&page)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromium");

    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/<id>" on stderr.
    let mut stderr = BufReader::new(browser.stderr.take().unwrap()).lines();
    let port: u16 = timeout(STEP, async {
        for _ in 0..1000 {
            let line = stderr.next_line().await.unwrap().expect("chromium exited before listening");
            if let Some(rest) = line.split("DevTools listening on ws://127.0.0.1:").nth(1) {
                return rest.split('/').next().unwrap().parse().unwrap();
            }
        }
        panic!("no DevTools line in chromium's first 1000 lines of stderr");
    })
    .await
    .expect("chromium's DevTools in time");
    // Keep the pipe drained so the browser never blocks on its own logging.
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });

    // The page's DevTools socket.
    let deadline = Instant::now() + PAGE_DEADLINE;
    let ws_url = loop {
        let list: serde_json::Value = serde_json::from_str(&http_get(port, "/json/list").await).unwrap_or_default();
        let found = list.as_array().into_iter().flatten().find(|t| {
            t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.contains("/client"))
        });
        if let Some(t) = found {
            break t["webSocketDebuggerUrl"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no /client page in chromium's targets: {list}");
        sleep(Duration::from_millis(100)).await;
    };
    let (mut devtools, _) = timeout(STEP, connect_async(ws_url)).await.unwrap().unwrap();

    // Ask the page how it is doing until it is done or failed.
    let expression = "JSON.stringify({state: document.body.dataset.state, status: document.getElementById('status').textContent, result: document.getElementById('result').textContent})";
    let mut id = 0;
    let state = loop {
        id += 1;
        let call = serde_json::json!({"id": id, "method": "Runtime.evaluate", "params": {"expression": expression, "returnByValue": true}});
        devtools.send(Message::text(call.to_string())).await.unwrap();
        let answer = loop {
            let msg = timeout(STEP, devtools.next()).await.unwrap().unwrap().unwrap();
            let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
            if v["id"] == id {
                break v;
            }
        };
        let value = answer["result"]["result"]["value"].as_str().unwrap_or("{}");
        let state: serde_json::Value = serde_json::from_str(value).unwrap();
        if state["state"] == "done" || state["state"] == "failed" {
            break state;
        }
        assert!(Instant::now() < deadline, "the page did not finish in {PAGE_DEADLINE:?}: {state}");
        sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state["state"], "done", "{state}");
    let result: serde_json::Value = serde_json::from_str(state["result"].as_str().unwrap()).unwrap();
    assert_eq!((result["n"].as_u64(), result["received"].as_u64()), (Some(N), Some(N)), "{result}");
    assert_eq!(result["mismatched"], 0, "{result}");
    let (p50, max) = (result["p50_ms"].as_f64().unwrap(), result["max_ms"].as_f64().unwrap());
    assert!(p50 >= 0.0 && max >= p50, "{result}");
    drop(devtools);
    browser.kill().await.ok();

    server.signal(libc::SIGTERM);
    let mut child = server.child;
    assert!(timeout(STEP, child.wait()).await.unwrap().unwrap().success());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(wsbench_core::layout::SERVER_SUMMARY)).unwrap()).unwrap();
    // Every round trip and the summary: counted in, echoed out, over one connection.
    assert_eq!((v["counts"]["messages_in"].as_u64(), v["counts"]["messages_out"].as_u64()), (Some(N + 1), Some(N + 1)), "{v}");
    assert_eq!(v["counts"]["connections_accepted"], 1);
    for cause in ["refused_origin", "refused_token_missing", "refused_token_forged", "refused_token_expired", "refused_rate"] {
        assert_eq!(v["limits_reached"][cause], 0, "{cause}");
    }
    eprintln!("browser round trips over {N} messages: p50 {p50} ms, p90 {} ms, p99 {} ms, max {max} ms", result["p90_ms"], result["p99_ms"]);
    std::fs::remove_dir_all(&dir).ok();
}
