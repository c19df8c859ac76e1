//! The load generator tells the truth at saturation: a stopped server, a server that cannot
//! accept every connection and an overloaded server each show in summary.json and in the exit
//! code, with the real `wsbench` server and load generator on 127.0.0.1.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use wsbench_core::result::{IntervalRow, LoadgenSummary};
use wsbench_core::warning::WarningKind;

/// Waits (bounded) until a run has written `rows` rows of intervals.csv.
fn wait_for_rows(dir: &Path, rows: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let n = fs::read_to_string(dir.join("intervals.csv")).map(|t| t.lines().count().saturating_sub(1)).unwrap_or(0);
        if n >= rows {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} interval rows not written in time", rows);
}

fn rows(dir: &Path) -> Vec<IntervalRow> {
    csv::Reader::from_path(dir.join("intervals.csv")).unwrap().deserialize().map(Result::unwrap).collect()
}

/// Stops the server with SIGSTOP 2 s into a 5 s open-loop run; returns the exit code, stderr
/// and what the run wrote.
fn run_against_a_stopped_server(extra: &[&str]) -> (Option<i32>, String, LoadgenSummary, Vec<IntervalRow>) {
    let (code, stderr, dir) = stopped_server_run(extra);
    // The key users read is `messages.unanswered`.
    let raw = json(&dir.path().join("summary.json"));
    assert_eq!(raw["messages"]["unanswered"].as_u64(), Some(summary(dir.path()).messages.lost), "{raw}");
    (code, stderr, summary(dir.path()), rows(dir.path()))
}

fn stopped_server_run(extra: &[&str]) -> (Option<i32>, String, tempfile::TempDir) {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let url = server.url();
    let mut args = vec!["loadgen", "--url", &url, "--connections", "10", "--rate", "2000", "--warmup", "0s", "--duration", "5s", "--drain-timeout", "1s"];
    args.extend_from_slice(extra);
    let mut child = wsbench().args(&args).arg("--out").arg(tmp.path()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_rows(tmp.path(), 2);
    server.signal(libc::SIGSTOP);
    let status = wait_for(&mut child, Duration::from_secs(20));
    server.signal(libc::SIGCONT);
    let status = status.expect("the load generator ends while the server is stopped");
    let out = child.wait_with_output().unwrap();
    (status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), tmp)
}

#[test]
fn a_stopped_server_fails_the_run_and_its_silence_is_in_the_percentiles() {
    let _serial = serial();
    let (code, stderr, s, rows) = run_against_a_stopped_server(&[]);
    assert_eq!(code, Some(1), "unanswered messages fail the run; stderr:\n{stderr}");
    let m = s.messages;
    assert!(m.lost > 0, "{m:?}");
    assert_eq!(m.sent, m.received + m.lost, "every message is answered or unanswered: {m:?}");
    // About three seconds of the run went unanswered: a stall of seconds, not microseconds.
    assert!(s.latency_us.p99 >= 1_000_000.0, "p99 {} µs", s.latency_us.p99);
    assert_eq!(s.latency_us.count, m.received - m.corrupted + m.lost, "unanswered messages are in the histogram");
    let min_age = s.unanswered_min_age_us.expect("the youngest unanswered message's age");
    assert!(min_age >= 900_000.0, "given up after the 1 s drain at the earliest: {min_age} µs");
    assert!(s.failed_checks.iter().any(|c| c.contains("never answered")), "{:?}", s.failed_checks);
    assert!(s.warnings.iter().any(|w| w.kind == WarningKind::MessagesLost && w.message.contains("at least")), "{:?}", s.warnings);
    assert!(stderr.contains("never answered"), "{stderr}");
    // While the server was stopped, intervals showed the backlog rather than nothing.
    assert!(rows.iter().any(|r| r.received == 0 && r.outstanding > 0 && r.oldest_outstanding_us > 100_000.0), "{rows:?}");
    // An interval with no reply has no percentile (an empty field), never 0 µs. (The last one
    // holds the unanswered messages, recorded at their ages when the run gave up on them.)
    assert!(rows.iter().filter(|r| r.received == 0 && r.outstanding > 0).all(|r| r.p50_us.is_none() && r.p99_us.is_none() && r.max_us.is_none()), "{rows:?}");
}

#[test]
fn a_loss_budget_lets_the_run_pass_but_still_reports_what_went_unanswered() {
    let _serial = serial();
    let (code, stderr, s, _) = run_against_a_stopped_server(&["--max-loss", "90%"]);
    assert_eq!(code, Some(0), "within --max-loss; stderr:\n{stderr}");
    assert!(s.complete && s.failed_checks.is_empty(), "{:?}", s.failed_checks);
    assert!(s.messages.lost > 0);
    assert!(s.latency_us.p99 >= 1_000_000.0, "p99 {} µs", s.latency_us.p99);
    assert!(s.warnings.iter().any(|w| w.kind == WarningKind::MessagesLost), "{:?}", s.warnings);
    assert!(stderr.contains("never answered"), "{stderr}");
}

/// `prlimit`, from util-linux; the test needs it to limit a server's open files.
fn prlimit() -> &'static str {
    let ok = Command::new("prlimit").arg("--version").stdout(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "this test needs `prlimit` (util-linux) on PATH");
    "prlimit"
}

/// A built-in server allowed 40 open files: it accepts about 30 connections, no more.
fn start_limited_server() -> (std::process::Child, String) {
    let mut child = Command::new(prlimit())
        .args(["--nofile=40:40", env!("CARGO_BIN_EXE_wsbench"), "server", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let ev = wsbench_core::event::Listening::parse(line.trim()).unwrap_or_else(|| panic!("not a listening line: {line}"));
    (child, ev.addr)
}

#[test]
fn connections_a_server_cannot_accept_are_counted_by_cause_and_the_rate_stays_whole() {
    let _serial = serial();
    let (mut server, addr) = start_limited_server();
    let url = format!("ws://{addr}/");
    let run = |extra: &[&str]| {
        let tmp = tempfile::tempdir().unwrap();
        let mut args = vec!["--url", &url, "--connections", "60", "--connect-rate", "10000", "--rate", "600", "--warmup", "0s", "--duration", "2s", "--drain-timeout", "1s"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", tmp.path().to_str().unwrap()]);
        let out = loadgen(&args, Duration::from_secs(40));
        (out, summary(tmp.path()))
    };
    let (out, s) = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "failed connections fail the run; stderr:\n{stderr}");
    let c = &s.connections;
    assert!(c.failed > 0 && c.established > 0, "{c:?}");
    assert_eq!(c.failures.values().sum::<u32>(), c.failed, "every failure has a cause: {c:?}");
    assert!(s.failed_checks.iter().any(|f| f.contains("connections failed to open")), "{:?}", s.failed_checks);
    assert!(s.warnings.iter().any(|w| w.kind == WarningKind::ConnectionsFailed), "{:?}", s.warnings);
    assert!(stderr.contains("connections failed to open"), "{stderr}");
    // The open connections carry the whole rate.
    let rate = s.rate.unwrap();
    assert!(rate.sent_msgs_per_s >= 0.95 * 600.0, "{rate:?} with {} of 60 connections", c.established);
    assert!(s.messages.sent >= 1_140, "{:?}", s.messages);

    let (out, s) = run(&["--max-failed-connections", "60"]);
    assert_eq!(out.status.code(), Some(0), "within the budget: {}", String::from_utf8_lossy(&out.stderr));
    assert!(s.connections.failed > 0 && s.warnings.iter().any(|w| w.kind == WarningKind::ConnectionsFailed));
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn an_overloaded_server_shows_as_throughput_and_latency_not_as_zero() {
    let _serial = serial();
    for engine in ["tungstenite", "zero-alloc"] {
        let server = Server::start(&["--runtime", "current-thread"]);
        let tmp = tempfile::tempdir().unwrap();
        let url = server.url();
        // Far more than one server thread and one client thread can echo on two shared cores
        // (the zero-alloc client pipelines about 4 M msgs/s through a current-thread server
        // here, so 4 M is no longer enough). The server's backlog is answered late, during the
        // drain; a short drain keeps that part small beside what the window itself received.
        let args = ["--url", &url, "--engine", engine, "--connections", "50", "--rate", "40000000", "--warmup", "500ms", "--duration", "2s", "--drain-timeout", "500ms", "--max-loss", "100%"];
        let out = loadgen(&[&args[..], &["--out", tmp.path().to_str().unwrap()]].concat(), Duration::from_secs(40));
        let s = summary(tmp.path());
        assert_eq!(out.status.code(), Some(0), "{engine}: {}", String::from_utf8_lossy(&out.stderr));
        let m = s.messages;
        assert!(s.throughput_msgs_per_s > 0.0, "{engine}: {m:?}");
        assert!(m.received > 0 && m.late * 2 < m.received, "{engine}: most echoes arrive inside the window: {m:?}");
        assert!(s.warnings.iter().any(|w| w.kind == WarningKind::RateNotReached), "{engine}: {:?}", s.warnings);
        eprintln!("{engine}: asked 40,000,000 msgs/s: sent {:.0}/s, {:.0} msgs/s answered in the window, {} late, p99 {} µs", s.rate.unwrap().sent_msgs_per_s, s.throughput_msgs_per_s, m.late, s.latency_us.p99);
    }
}

#[test]
fn a_run_whose_load_generator_fails_its_checks_is_a_failed_trial_with_files_and_report() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_wsbench");
    let scenario = tmp.path().join("scenario.toml");
    fs::write(
        &scenario,
        format!(
            "name = \"limited\"\n[server]\ncommand = [\"{}\", \"--nofile=40:40\", \"{exe}\", \"server\", \"--listen\", \"127.0.0.1:{{port}}\"]\n\
             [load]\nconnections = 60\nconnect_rate = 10000\nrate = 600\nwarmup = \"0s\"\nduration = \"1s\"\ndrain_timeout = \"1s\"\n",
            prlimit()
        ),
    )
    .unwrap();
    let results = tmp.path().join("r");
    let out = wsbench().arg("run").arg(&scenario).arg("--results").arg(&results).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a failed trial fails the run: {stderr}");
    let run = fs::read_dir(results.join("limited")).unwrap().next().unwrap().unwrap().path();
    let manifest = json(&run.join("run.json"));
    let failures = manifest["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{manifest}");
    assert!(failures[0][2].as_str().unwrap().contains("exited with"), "{manifest}");
    let trial = run.join("default/trial-1");
    let s = summary(&trial);
    assert!(s.connections.failed > 0 && !s.failed_checks.is_empty(), "{:?}", s.connections);
    for f in ["latency.hlog", "intervals.csv", "loadgen.log", "server.log"] {
        assert!(trial.join(f).is_file(), "kept: {f}");
    }
    assert!(run.join("report/report.md").is_file(), "the report is still written: {stderr}");
}
