//! End to end: the real `wsbench` binary, its server and load-generator processes on 127.0.0.1,
//! checked through what a user reads: exit codes, stderr, result files.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn write_scenario(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("scenario.toml");
    fs::write(&path, text).unwrap();
    path
}

/// The only run directory below `results/<scenario>/`.
fn only_run_dir(results: &Path, scenario: &str) -> PathBuf {
    let mut runs: Vec<_> = fs::read_dir(results.join(scenario)).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.pop().unwrap()
}

#[test]
fn a_scenario_run_leaves_every_file_a_user_needs() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        tmp.path(),
        r#"
name = "e2e"
trials = 2
[load]
connections = 4
rate = 1000
warmup = "500ms"
duration = "2s"
drain_timeout = "1s"
[[configs]]
name = "current-thread"
server = { runtime = "current-thread" }
[[configs]]
name = "multi-thread"
server = { runtime = "multi-thread", workers = 2 }
"#,
    );
    let results = tmp.path().join("results");
    let out = wsbench().args(["run"]).arg(&scenario).arg("--results").arg(&results).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wsbench run failed: {stderr}");

    let run = only_run_dir(&results, "e2e");
    let manifest = json(&run.join("run.json"));
    assert_eq!(manifest["order"].as_array().unwrap().len(), 4);
    // Interleaved: A B A B.
    let order: Vec<&str> = manifest["order"].as_array().unwrap().iter().map(|o| o[0].as_str().unwrap()).collect();
    assert_eq!(order, ["current-thread", "multi-thread", "current-thread", "multi-thread"]);

    let mut logs = Vec::new();
    let mut counts = Vec::new();
    for config in ["current-thread", "multi-thread"] {
        for trial in 1..=2 {
            let dir = run.join(config).join(format!("trial-{trial}"));
            let v = json(&dir.join("summary.json"));
            for key in [
                "schema_version", "complete", "config", "started_at", "duration_s", "throughput_msgs_per_s",
                "messages", "connections", "latency_us", "service_time_us", "send_lag_us", "warnings",
            ] {
                assert!(v.get(key).is_some(), "{}: summary.json lacks `{key}`", dir.display());
            }
            for key in ["sent", "received", "late", "errors", "corrupted", "unanswered"] {
                assert!(v["messages"].get(key).is_some(), "messages.{key}");
            }
            for key in ["target", "established", "failed", "failures"] {
                assert!(v["connections"].get(key).is_some(), "connections.{key}");
            }
            for block in ["latency_us", "service_time_us", "send_lag_us"] {
                for key in ["count", "min", "mean", "p50", "p90", "p99", "p99_9", "p99_99", "max"] {
                    assert!(v[block].get(key).is_some(), "{block}.{key}");
                }
            }
            let s = summary(&dir);
            assert_eq!(s.schema_version, 1);
            assert!(s.complete);
            assert_eq!(s.messages.errors + s.messages.corrupted + s.messages.lost, 0, "{s:?}");
            // Open loop at 1000/s for 2 s.
            assert!((1500..=2500).contains(&s.messages.sent), "sent {}", s.messages.sent);
            for f in ["latency.hlog", "service_time.hlog", "send_lag.hlog", "intervals.csv", "server.json", "server-latency.hlog", "processes.csv"] {
                assert!(dir.join(f).is_file(), "{} lacks {f}", dir.display());
            }
            // The server and the load generator were separate processes, sampled from /proc.
            let procs = fs::read_to_string(dir.join("processes.csv")).unwrap();
            let pids: std::collections::BTreeMap<String, String> = procs
                .lines()
                .skip(1)
                .map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    (f[1].to_string(), f[2].to_string())
                })
                .collect();
            assert!(pids.contains_key("server") && pids.contains_key("loadgen-0"), "{procs}");
            assert_ne!(pids["server"], pids["loadgen-0"]);
            assert_ne!(pids["server"], std::process::id().to_string());
            logs.push(dir.join("latency.hlog"));
            counts.push(s.latency_us.count);
        }
    }

    let report = run.join("report");
    let md = fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("current-thread") && md.contains("multi-thread"), "{md}");
    let pngs: Vec<_> = fs::read_dir(&report).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "png")).collect();
    assert!(pngs.len() >= 4, "{pngs:?}");
    for p in &pngs {
        let bytes = fs::read(p).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000, "{}", p.display());
        assert!(p.with_extension("svg").is_file(), "{} has no SVG twin", p.display());
    }

    // HdrHistogram's own Python reader decodes our logs, count for count. Where Python cannot,
    // `hdrhistogram_python_reader_checks_our_logs` below shows as ignored with the reason.
    #[cfg(python_hdrh)]
    {
        let py = python_with_hdrh().expect("the build found Python with hdrh, the test did not: run `cargo clean -p wsbench`");
        let decoded = python_hlog_summary(&py, &logs);
        for (log, count) in logs.iter().zip(&counts) {
            let d = &decoded[log.to_str().unwrap()];
            assert_eq!(d["count"].as_u64(), Some(*count), "{}: {d}", log.display());
            assert!(d["intervals"].as_u64().unwrap() >= 2, "{d}");
        }
    }
}

/// Stands in `cargo test`'s output for the check above that HdrHistogram's Python reader decodes
/// our logs: ignored, with the reason, where Python cannot import `hdrh`.
#[test]
#[cfg_attr(
    not(python_hdrh),
    ignore = "Python cannot import hdrh, so the check that HdrHistogram's Python reader decodes our logs did not run (pip install hdrhistogram; set WSBENCH_PYTHON)"
)]
fn hdrhistogram_python_reader_checks_our_logs() {
    assert!(python_with_hdrh().is_some());
}

/// CI runs every check: a skipped one fails it (`.ci/run` installs the Python packages).
#[test]
fn ci_skips_no_check() {
    if std::env::var_os("CI").is_some() {
        let found = [("hdrhistogram", cfg!(python_hdrh)), ("websockets", cfg!(python_websockets))];
        let missing: Vec<&str> = found.iter().filter(|(_, ok)| !ok).map(|(package, _)| *package).collect();
        assert!(missing.is_empty(), "CI must provide Python with {missing:?} (set WSBENCH_PYTHON before building the tests)");
    }
}

#[test]
fn several_load_generator_processes_are_merged_losslessly() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        tmp.path(),
        "name = \"shards\"\n[load]\nconnections = 4\nprocesses = 2\nrate = 1000\nwarmup = \"300ms\"\nduration = \"2s\"\n",
    );
    let results = tmp.path().join("results");
    let out = wsbench().arg("run").arg(&scenario).arg("--results").arg(&results).arg("--no-report").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trial = only_run_dir(&results, "shards").join("default/trial-1");
    let merged = summary(&trial);
    let shards: Vec<_> = (0..2).map(|i| summary(&trial.join(format!("loadgen-{i}")))).collect();
    assert_eq!(shards.iter().map(|s| s.connections.target).sum::<u32>(), 4);
    assert_eq!(merged.connections.established, 4);
    assert_eq!(merged.messages.received, shards.iter().map(|s| s.messages.received).sum::<u64>());
    assert_eq!(merged.latency_us.count, shards.iter().map(|s| s.latency_us.count).sum::<u64>());
    // The merged log holds every shard's histogram, count for count.
    let total = |p: &Path| wsbench_core::hist::total(&wsbench_core::hist::read_interval_log(p).unwrap());
    let mut expected = total(&trial.join("loadgen-0/latency.hlog"));
    expected.add(total(&trial.join("loadgen-1/latency.hlog"))).unwrap();
    assert_eq!(total(&trial.join("latency.hlog")), expected);
    // Both processes ran apart from the server and from each other.
    let procs = fs::read_to_string(trial.join("processes.csv")).unwrap();
    assert!(procs.contains("loadgen-0") && procs.contains("loadgen-1"), "{procs}");
}

#[test]
fn closed_loop_counts_add_up_with_zero_errors() {
    let _serial = serial();
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = loadgen(
        &["--url", &server.url(), "--connections", "4", "--in-flight", "4", "--warmup", "500ms", "--duration", "2s", "--out", tmp.path().to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(tmp.path());
    assert!(s.complete);
    assert!(s.messages.sent > 1000, "{s:?}");
    assert_eq!(s.messages.received, s.messages.sent);
    assert_eq!((s.messages.errors, s.messages.corrupted, s.messages.lost), (0, 0, 0));
    assert_eq!(s.connections.established, 4);
    assert_eq!(s.latency_us.count, s.messages.received);
    // Closed loop: measured from the actual send, so latency is service time.
    assert_eq!(s.latency_us.count, s.service_time_us.count);
    let rows = fs::read_to_string(tmp.path().join("intervals.csv")).unwrap().lines().count();
    assert!((2..=5).contains(&rows), "intervals.csv has {rows} lines");
}

#[test]
fn text_messages_are_echoed_and_checked() {
    let _serial = serial();
    let server = Server::start(&["--runtime", "current-thread"]);
    let tmp = tempfile::tempdir().unwrap();
    let out = loadgen(
        &["--url", &server.url(), "--connections", "2", "--text", "--size", "1KiB", "--warmup", "0s", "--duration", "1s", "--out", tmp.path().to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(tmp.path());
    assert!(s.messages.received > 100);
    assert_eq!((s.messages.errors, s.messages.corrupted, s.messages.lost), (0, 0, 0));
}

/// The point of open-loop measurement: a server that freezes 50 ms every 500 ms delays a tenth
/// of the messages by up to 50 ms, so p99 must show about 45 ms (the top tenth of the delayed
/// ones) — while a closed-loop load generator, which stops sending while it waits, barely sees it
/// in its service time (coordinated omission).
#[test]
fn pauses_show_in_open_loop_latency_and_hide_in_closed_loop_service_time() {
    let _serial = serial();
    let server = Server::start(&["--pause-every", "500ms", "--pause-for", "50ms"]);
    let open = tempfile::tempdir().unwrap();
    let out = loadgen(
        &["--url", &server.url(), "--connections", "10", "--rate", "1000", "--warmup", "500ms", "--duration", "4s", "--out", open.path().to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(open.path());
    // Analytic: 10 % of messages delayed uniformly in [0, 50 ms] -> p99 = 45 ms, p99.9 = 49.5 ms.
    assert!((30_000.0..65_000.0).contains(&s.latency_us.p99), "open-loop p99 {} µs", s.latency_us.p99);
    assert!(s.latency_us.p50 < 10_000.0, "p50 {} µs should be untouched", s.latency_us.p50);

    let closed = tempfile::tempdir().unwrap();
    let out = loadgen(
        &["--url", &server.url(), "--connections", "10", "--in-flight", "1", "--warmup", "500ms", "--duration", "4s", "--out", closed.path().to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = summary(closed.path());
    assert!(c.service_time_us.p99 < s.latency_us.p99 / 3.0, "closed-loop service p99 {} µs vs open-loop p99 {} µs", c.service_time_us.p99, s.latency_us.p99);
}

#[test]
fn sigint_leaves_complete_files_marked_incomplete() {
    let _serial = serial();
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let mut child = wsbench()
        .args(["loadgen", "--url", &server.url(), "--connections", "2", "--rate", "500", "--warmup", "0s", "--duration", "30s", "--out"])
        .arg(tmp.path())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_for(&mut child, Duration::from_secs(10)).expect("loadgen exits after SIGINT");
    assert_eq!(status.code(), Some(1));
    let s = summary(tmp.path());
    assert!(!s.complete);
    assert!(s.reason.as_deref().unwrap_or("").contains("SIGINT"), "{:?}", s.reason);
    assert!(s.messages.received > 0);
    for f in ["latency.hlog", "service_time.hlog", "send_lag.hlog", "intervals.csv"] {
        assert!(tmp.path().join(f).is_file(), "missing {f}");
    }
}

#[test]
fn a_killed_server_makes_the_load_generator_exit_1_with_files() {
    let mut server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let mut child = wsbench()
        .args(["loadgen", "--url", &server.url(), "--connections", "3", "--warmup", "0s", "--duration", "30s", "--out"])
        .arg(tmp.path())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    server.signal(libc::SIGKILL);
    server.wait(Duration::from_secs(5));
    let status = wait_for(&mut child, Duration::from_secs(15)).expect("loadgen notices the dead server");
    assert_eq!(status.code(), Some(1));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.trim().is_empty(), "a one-line reason on stderr");
    let s = summary(tmp.path());
    assert!(!s.complete);
    assert!(s.reason.is_some());
    assert!(s.messages.received > 0);
}

#[test]
fn the_server_stops_cleanly_on_sigterm_and_writes_its_files() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&["--out", tmp.path().to_str().unwrap()]);
    let lg = tempfile::tempdir().unwrap();
    let out = loadgen(&["--url", &server.url(), "--connections", "2", "--warmup", "0s", "--duration", "1s", "--out", lg.path().to_str().unwrap()], Duration::from_secs(30));
    assert!(out.status.success());
    let start = std::time::Instant::now();
    server.signal(libc::SIGTERM);
    let st = server.wait(Duration::from_secs(3)).expect("server exits after SIGTERM");
    assert!(st.success(), "{st:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    let v = json(&tmp.path().join("server.json"));
    assert!(v["counts"]["messages_in"].as_u64().unwrap() > 0, "{v}");
    assert!(v["one_way_latency_us"]["count"].as_u64().unwrap() > 0, "{v}");
    assert!(tmp.path().join("server-latency.hlog").is_file());
}

#[test]
fn a_bad_scenario_key_names_file_line_and_key() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(tmp.path(), "trials = 1\n[load]\nconnections = 2\nrat = 100\n");
    let out = wsbench().arg("run").arg(&scenario).arg("--results").arg(tmp.path().join("r")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:4:", scenario.display())), "{stderr}");
    assert!(stderr.contains("rat"), "{stderr}");
    assert!(!tmp.path().join("r").exists(), "nothing is created for a bad scenario");
}

#[test]
fn a_server_that_cannot_start_gives_one_line_with_its_stderr() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        tmp.path(),
        "[server]\ncommand = [\"sh\", \"-c\", \"echo cannot bind port {port} >&2; exit 3\"]\nready_timeout = \"5s\"\n[load]\nduration = \"1s\"\n",
    );
    let out = wsbench().arg("run").arg(&scenario).arg("--results").arg(tmp.path().join("r")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot bind port") && stderr.contains("code 3"), "{stderr}");
}

#[test]
fn a_busy_port_is_a_one_line_error() {
    let _serial = serial();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = wsbench().args(["server", "--listen", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}

#[test]
fn an_external_server_command_is_measured_too() {
    let _serial = serial();
    // The built-in server started as if it were a foreign one: readiness by TCP connect only.
    let tmp = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_wsbench");
    let scenario = write_scenario(
        tmp.path(),
        &format!("name = \"ext\"\n[server]\ncommand = [\"{exe}\", \"server\", \"--listen\", \"127.0.0.1:{{port}}\"]\n[load]\nconnections = 2\nwarmup = \"0s\"\nduration = \"1s\"\n"),
    );
    let results = tmp.path().join("r");
    let out = wsbench().arg("run").arg(&scenario).arg("--results").arg(&results).arg("--no-report").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = only_run_dir(&results, "ext");
    let s = summary(&run.join("default/trial-1"));
    assert!(s.messages.received > 0 && s.messages.errors == 0, "{s:?}");
}

#[test]
fn help_lists_every_command() {
    let _serial = serial();
    let out = wsbench().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "server", "loadgen", "report", "merge"] {
        assert!(text.contains(cmd), "{text}");
    }
    for sub in ["run", "server", "loadgen", "report", "merge"] {
        let out = wsbench().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help");
    }
}
