//! End to end: template loads against a server wsbench did not write.
//!
//! The server is scripts/jsonrpc_server.py (Python `websockets`, no wsbench code): it answers
//! each JSON-RPC request with the request's id after a known service time, can push
//! notifications without an id, and can be told to answer with wrong ids. The load generator
//! sends `--template` messages and pairs replies by `--match-json /id`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use wsbench_core::warning::WarningKind;

/// The scenario's service time (`--service-ms 5`), push period (`--push-every 0.25`),
/// connections and measured window.
const SERVICE_MS: f64 = 5.0;
const PUSH_EVERY_S: f64 = 0.25;
const CONNECTIONS: f64 = 4.0;
const DURATION_S: f64 = 2.0;
/// How far above the service time p50 may be: Python's event loop, two processes and the
/// rest of a shared 2-core machine add delay, never take it away.
const MARGIN_MS: f64 = 20.0;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/jsonrpc_server.py").canonicalize().unwrap()
}

/// The Python server on 127.0.0.1 with an OS-chosen port (it prints wsbench's listening line);
/// killed when dropped.
fn start_py_server(py: &str, extra: &[&str]) -> Server {
    let mut cmd = Command::new(py);
    cmd.arg(script()).args(["--port", "0"]).args(extra);
    Server::spawn(cmd)
}

const TEMPLATE: &str = r#"{"jsonrpc":"2.0","id":{seq},"method":"echo","params":["{rand:16}"]}"#;

#[test]
#[cfg_attr(
    not(python_websockets),
    ignore = "Python cannot import websockets, which runs the foreign JSON-RPC server (pip install websockets==17.4; set WSBENCH_PYTHON)"
)]
fn the_foreign_json_scenario_measures_the_service_time_and_counts_pushes_apart() {
    let py = python_with_websockets().expect("the build found Python with websockets, the test did not: run `cargo clean -p wsbench`");
    let _serial = serial();
    // The committed scenario, with this machine's interpreter; it stays in scenarios/ so its
    // relative script path resolves as it does for users.
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/foreign-json.toml");
    let text = std::fs::read_to_string(&committed).unwrap();
    assert!(text.contains(r#"command = ["python3", "#), "the scenario's interpreter moved: update this test");
    let text = text.replacen(r#"["python3", "#, &format!("[{}, ", toml::Value::String(py.clone())), 1);
    let tmp = tempfile::tempdir().unwrap();
    let scenario = committed.with_file_name(format!(".foreign-json-test-{}.toml", std::process::id()));
    std::fs::write(&scenario, text).unwrap();
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _remove = Remove(&scenario);

    let results = tmp.path().join("results");
    let started = Instant::now();
    let mut child = wsbench().arg("run").arg(&scenario).arg("--results").arg(&results).arg("--no-report").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let status = wait_for(&mut child, Duration::from_secs(90)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("wsbench run did not finish within 90 s")
    });
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{}\n{stderr}\n({:.1} s)", String::from_utf8_lossy(&out.stdout), started.elapsed().as_secs_f64());
    assert!(status.success(), "wsbench run failed: {stderr}");

    let runs: Vec<_> = std::fs::read_dir(results.join("foreign-json")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    for config in ["open-loop", "closed-loop"] {
        let s = summary(&runs[0].join(config).join("trial-1"));
        let (m, l) = (s.messages, s.latency_us);
        eprintln!("{config}: {m:?}, latency min {:.0} µs p50 {:.0} µs p99 {:.0} µs", l.min, l.p50, l.p99);
        assert!(s.passed(), "{config}: {:?} {:?}", s.reason, s.failed_checks);
        assert!(m.received > 100 && m.received == m.sent && m.lost == 0, "{config}: {m:?}");
        assert_eq!(m.unmatched, 0, "{config}: every reply names its request");
        // Every reply leaves the server at least the service time after its request was sent,
        // and the latency counts from then: a reply paired with the wrong request would show
        // less. (HdrHistogram keeps 3 significant digits: its minimum may read 0.1 % low.)
        let service_us = SERVICE_MS * 1e3;
        assert!(l.min >= service_us * 0.999, "{config}: min {} µs is below the service time", l.min);
        assert!(l.p50 >= service_us && l.p50 < service_us + MARGIN_MS * 1e3, "{config}: p50 {} µs, expected within [{service_us}, {}) µs", l.p50, service_us + MARGIN_MS * 1e3);
        // Pushes carry no id: counted apart, never as replies. Each connection gets one per
        // period; a busy event loop sends fewer, never more.
        let expected = CONNECTIONS * DURATION_S / PUSH_EVERY_S;
        assert!((expected / 4.0..=expected + 2.0 * CONNECTIONS).contains(&(m.unsolicited as f64)), "{config}: {} unsolicited, about {expected} pushes expected", m.unsolicited);
        assert!(s.warnings.iter().any(|w| w.kind == WarningKind::RepliesUnsolicited), "{config}: {:?}", s.warnings);
        assert!(s.config.foreign.is_some(), "the plan records the template and the rule");
    }
}

#[test]
#[cfg_attr(
    not(python_websockets),
    ignore = "Python cannot import websockets, which runs the foreign JSON-RPC server (pip install websockets==17.4; set WSBENCH_PYTHON)"
)]
fn replies_with_wrong_ids_are_unmatched_and_fail_the_run() {
    let py = python_with_websockets().expect("the build found Python with websockets, the test did not: run `cargo clean -p wsbench`");
    let _serial = serial();
    let server = start_py_server(&py, &["--service-ms", "1", "--wrong-ids"]);
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let url = format!("ws://{}/", server.addr);
    let args = ["--url", &url, "--template", TEMPLATE, "--match-json", "/id", "--connections", "2", "--rate", "100", "--warmup", "200ms", "--duration", "1s", "--drain-timeout", "300ms", "--out", out_dir.to_str().unwrap()];
    let out = loadgen(&args, Duration::from_secs(30));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "wrong answers fail the run");
    let s = summary(&out_dir);
    let m = s.messages;
    assert!(m.unmatched > 50 && m.received == 0 && m.unsolicited == 0, "{m:?}");
    assert!(s.failed_checks.iter().any(|c| c.contains("named a request that was never sent")), "{:?}", s.failed_checks);
    assert!(s.warnings.iter().any(|w| w.kind == WarningKind::RepliesUnmatched), "{:?}", s.warnings);
    assert!(stdout.contains("unmatched replies") && stderr.contains("failed:"), "the reader is told");
}

#[test]
fn a_template_on_the_zero_alloc_client_is_refused_with_exit_2() {
    let out = loadgen(&["--url", "ws://127.0.0.1:0/", "--template", TEMPLATE, "--match-json", "/id", "--engine", "zero-alloc"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runs on the tungstenite client"));
}

/// Rendering and pairing allocate nothing: against the built-in server, which echoes each
/// request (so the id comes back), the load generator's worker threads make no heap allocation
/// between the first and the last measured message, with either correlation rule.
#[test]
fn template_loads_allocate_nothing_per_message() {
    let _serial = serial();
    let server = Server::start(&["--engine", "zero-alloc", "--runtime", "current-thread"]);
    let tmp = tempfile::tempdir().unwrap();
    let url = server.url();
    for (flag, rule) in [("--match-json", "/id"), ("--match-regex", r#""id":(\d+)"#)] {
        let dir = tmp.path().join(flag.trim_start_matches('-'));
        let template = r#"{"jsonrpc":"2.0","id":{seq},"method":"echo","params":["{rand:16}",{conn},{ts_ns}]}"#;
        let args = ["--url", &url, "--template", template, flag, rule, "--connections", "20", "--in-flight", "8", "--warmup", "300ms", "--duration", "1s", "--drain-timeout", "1s", "--out", dir.to_str().unwrap()];
        let out = loadgen(&args, Duration::from_secs(30));
        assert!(out.status.success(), "{flag}: {}", String::from_utf8_lossy(&out.stderr));
        let s = summary(&dir);
        let m = s.messages;
        assert!(m.received > 10_000 && m.received == m.sent, "{flag}: {m:?}");
        assert_eq!((m.unmatched, m.unsolicited, m.corrupted), (0, 0, 0), "{flag}: {m:?}");
        assert_eq!(s.worker_allocations_per_message, Some(0.0), "{flag}: {m:?}");
    }
}
