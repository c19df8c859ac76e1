//! End to end: load-generator shards (`wsbench loadgen --shard i/n --start-at T`) split one
//! load exactly, begin together, say when they are late, and `wsbench collect` refuses to
//! report until every shard is there.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use tokio_tungstenite::tungstenite::{self, Message};
use wsbench_core::header::MessageHeader;

/// A wall-clock instant `ahead` from now, as `--start-at` takes it.
fn start_at(ahead: Duration) -> String {
    humantime::format_rfc3339_millis(SystemTime::now() + ahead).to_string()
}

fn start_before(behind: Duration) -> String {
    humantime::format_rfc3339_millis(SystemTime::now() - behind).to_string()
}

/// One message as the recording server saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    intended_ns: u64,
    warmup: bool,
    /// Which of the server's listeners received it.
    listener: usize,
}

/// An echo server on 127.0.0.1 with several listeners that records every message's header, so
/// a test can read the intended send times the load generators used.
struct RecordingServer {
    urls: Vec<String>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl RecordingServer {
    fn start(listeners: usize) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut urls = Vec::new();
        for id in 0..listeners {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            urls.push(format!("ws://{}/", listener.local_addr().unwrap()));
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                // Bounded: the test sets `stop`, or this gives up after two minutes.
                let end = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).unwrap();
                            let seen = seen.clone();
                            std::thread::spawn(move || echo(stream, id, &seen));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self { urls, seen, stop }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Echoes one connection until it closes, recording each message's header.
fn echo(stream: std::net::TcpStream, listener: usize, seen: &Mutex<Vec<Seen>>) {
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let Ok(mut ws) = tungstenite::accept(stream) else { return };
    while let Ok(msg) = ws.read() {
        match msg {
            Message::Binary(ref b) => {
                if let Some(h) = MessageHeader::decode(b) {
                    seen.lock().unwrap().push(Seen { intended_ns: h.intended_ns, warmup: h.warmup, listener });
                }
                if ws.send(msg).is_err() {
                    return;
                }
            }
            Message::Close(_) => {
                // tungstenite queued its reply (1000 to a 1000): send it, as a ramp's close awaits it.
                let _ = ws.flush();
                return;
            }
            _ => {}
        }
    }
}

/// Starts `wsbench loadgen` with `args`; the caller waits for it.
fn spawn_loadgen(args: &[&str]) -> std::process::Child {
    wsbench().arg("loadgen").args(args).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
}

fn finish(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    if wait_for(&mut child, limit).is_none() {
        let _ = child.kill();
        panic!("loadgen did not finish within {limit:?}");
    }
    child.wait_with_output().unwrap()
}

/// The load of these tests: 5 connections at 400 msgs/s, so 2 shards hold 3 and 2 connections.
const LOAD: [&str; 12] = ["--connections", "5", "--rate", "400", "--warmup", "500ms", "--duration", "2s", "--drain-timeout", "1s", "--connect-rate", "100"];
/// 400 msgs/s for 2 s.
const MEASURED: u64 = 800;
const NS_PER_MSG: u64 = 2_500_000;

/// Measured (non-warm-up) intended times of one listener set, sorted.
fn measured(seen: &[Seen], listeners: &[usize]) -> Vec<Seen> {
    let mut v: Vec<Seen> = seen.iter().filter(|s| !s.warmup && listeners.contains(&s.listener)).copied().collect();
    v.sort_by_key(|s| s.intended_ns);
    v
}

/// `load` run as two shards from a shared start (listeners 0 and 1 of one recording server,
/// results in `out`), then as one process (listener 2, results in `single`); every run exits 0.
struct ShardedAndSingle {
    _tmp: tempfile::TempDir,
    out: std::path::PathBuf,
    single: std::path::PathBuf,
    at: String,
    seen: Vec<Seen>,
}

fn run_sharded_and_single(load: &[&str]) -> ShardedAndSingle {
    let tmp = tempfile::tempdir().unwrap();
    let server = RecordingServer::start(3);
    let out = tmp.path().join("sharded");
    let at = start_at(Duration::from_secs(4));
    let shards: Vec<_> = (0..2)
        .map(|i| {
            let shard = format!("{i}/2");
            spawn_loadgen(&[load, &["--url", &server.urls[i], "--shard", &shard, "--start-at", &at, "--out", out.to_str().unwrap()]].concat())
        })
        .collect();
    for (i, child) in shards.into_iter().enumerate() {
        let o = finish(child, Duration::from_secs(40));
        assert!(o.status.success(), "shard {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let single = tmp.path().join("single");
    let o = loadgen(&[load, &["--url", &server.urls[2], "--out", single.to_str().unwrap()]].concat(), Duration::from_secs(40));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen = server.seen();
    ShardedAndSingle { _tmp: tmp, out, single, at, seen }
}

#[test]
fn two_shards_started_together_send_exactly_the_one_process_schedule() {
    let _serial = serial();
    // Listener 0 and 1 take shard 0 and 1; listener 2 the same load from one process.
    // The temporary folder lives as long as `_tmp`: bound, not left to `..`.
    let ShardedAndSingle { _tmp, out, single: single_dir, at, seen } = run_sharded_and_single(&LOAD);

    // What users read: each shard's summary under shard-<i>/, with its part and the whole.
    let parts: Vec<_> = (0..2).map(|i| summary(&out.join(format!("shard-{i}")))).collect();
    let single = summary(&single_dir);
    assert_eq!(parts.iter().map(|s| s.connections.established).collect::<Vec<_>>(), [3, 2], "striped: connections 0, 2, 4 and 1, 3");
    assert_eq!(parts.iter().map(|s| s.config.connections).collect::<Vec<_>>(), [3, 2]);
    for (i, s) in parts.iter().enumerate() {
        let shard = s.shard.as_ref().expect("a shard says which it is");
        assert_eq!((shard.index, shard.count, shard.total_connections, shard.total_rate), (i as u32, 2, 5, Some(400.0)));
        let start = s.start.as_ref().expect("a shared start is reported");
        assert!(!start.late, "shard {i} started {:.3} s late", start.late_by_s);
        assert_eq!(start.at, at);
        assert_eq!(s.messages.lost, 0);
    }
    assert_eq!(single.messages.sent, MEASURED);
    assert_eq!(parts.iter().map(|s| s.messages.sent).sum::<u64>(), single.messages.sent, "the shards together send what one process sends");
    assert_eq!(parts.iter().map(|s| s.messages.sent).collect::<Vec<_>>(), [MEASURED * 3 / 5, MEASURED * 2 / 5], "each its share");

    // What the server saw: the one-process schedule is one message every 2.5 ms ...
    let one = measured(&seen, &[2]);
    assert_eq!(one.len() as u64, MEASURED);
    for (k, s) in one.iter().enumerate() {
        let offset = s.intended_ns - one[0].intended_ns;
        assert!(offset.abs_diff(k as u64 * NS_PER_MSG) <= 1, "one process, message {k}: offset {offset} ns");
    }
    // ... and the shards' union is the same schedule: message g is sent by connection g % 5,
    // which is shard (g % 5) % 2, so the shards take turns 0 1 0 1 0 | 0 1 0 1 0 | ... The two
    // processes convert the shared wall-clock start to monotonic time separately; they agree
    // within microseconds, far below the 2.5 ms between messages.
    let union = measured(&seen, &[0, 1]);
    assert_eq!(union.len(), one.len(), "as many messages as one process");
    let pattern = [0, 1, 0, 1, 0];
    let mut worst = 0;
    for (k, s) in union.iter().enumerate() {
        assert_eq!(s.listener, pattern[k % 5], "message {k} came from the wrong shard");
        let offset = s.intended_ns - union[0].intended_ns;
        let want = one[k].intended_ns - one[0].intended_ns;
        assert!(offset.abs_diff(want) < 500_000, "message {k}: {offset} ns after the first, one process {want} ns");
        worst = worst.max(offset.abs_diff(want));
    }
    eprintln!("shards vs one process: intended times differ by at most {worst} ns");
    // The shared start: the shards' first measured messages are one interval apart, not two
    // independent starts.
    let first = |l: usize| union.iter().find(|s| s.listener == l).unwrap().intended_ns;
    assert!(first(1).abs_diff(first(0) + NS_PER_MSG) < 500_000, "shard 1 begins 2.5 ms after shard 0");
}

/// Runs `load` as two shards (listeners 0 and 1) and as one process (listener 2) against a
/// recording server and checks that the shards' measured messages are the one process's: as
/// many, intended at the same offsets from the first.
fn assert_two_shards_send_the_one_process_schedule(load: &[&str], measured_msgs: usize) {
    let seen = run_sharded_and_single(load).seen;
    let (one, union) = (measured(&seen, &[2]), measured(&seen, &[0, 1]));
    assert_eq!((one.len(), union.len()), (measured_msgs, measured_msgs), "every message of the schedule, once");
    let mut worst = 0;
    for (k, (a, b)) in union.iter().zip(&one).enumerate() {
        let (offset, want) = (a.intended_ns - union[0].intended_ns, b.intended_ns - one[0].intended_ns);
        assert!(offset.abs_diff(want) < 500_000, "message {k}: {offset} ns after the first, one process {want} ns");
        worst = worst.max(offset.abs_diff(want));
    }
    assert!(union.iter().any(|s| s.listener == 0) && union.iter().any(|s| s.listener == 1), "both shards sent");
    eprintln!("shards vs one process on a ramp: intended times differ by at most {worst} ns");
}

#[test]
fn two_shards_of_a_rate_ramp_send_exactly_its_one_process_schedule() {
    let _serial = serial();
    // 400/s, up to 1,200/s over 1 s, a step down to 200/s held 1 s: 400 + 800 + 200 measured.
    let load = ["--connections", "5", "--rate", "400", "--warmup", "500ms", "--drain-timeout", "1s", "--connect-rate", "100", "--stage", "1s:400", "--stage", "1s:1200", "--stage", "0s:200", "--stage", "1s:200"];
    assert_two_shards_send_the_one_process_schedule(&load, 1_400);
}

#[test]
fn two_shards_of_a_connection_ramp_send_exactly_its_one_process_schedule() {
    let _serial = serial();
    // 400/s throughout while the open connections go 4 -> 10 -> 4: 1,200 measured.
    let load = ["--connections", "4", "--rate", "400", "--warmup", "500ms", "--drain-timeout", "1s", "--connect-rate", "100", "--stage", "1s:400", "--stage", "1s:400:10", "--stage", "1s:400:4"];
    assert_two_shards_send_the_one_process_schedule(&load, 1_200);
}

#[test]
fn a_shard_that_starts_after_its_start_time_says_it_is_late() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&[]);
    let url = server.url();
    let at = start_before(Duration::from_secs(3));
    let out = tmp.path().join("late");
    let args = [
        "--url", &url, "--connections", "2", "--rate", "50", "--warmup", "0s", "--duration", "4s", "--interval", "1s", "--drain-timeout", "1s",
        "--shard", "1/2", "--start-at", &at, "--out", out.to_str().unwrap(),
    ];
    let o = loadgen(&args, Duration::from_secs(40));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a late shard fails: {stderr}");
    assert!(stderr.contains("after --start-at"), "{stderr}");
    let s = summary(&out.join("shard-1"));
    let start = s.start.as_ref().unwrap();
    assert!(start.late, "{start:?}");
    assert!(start.late_by_s >= 2.5, "{start:?}");
    assert!(s.failed_checks.iter().any(|c| c.contains("shard 1/2 began its warm-up")), "{:?}", s.failed_checks);
    // The raw file says so too, for tools that read JSON without our types.
    assert_eq!(json(&out.join("shard-1/summary.json"))["start"]["late"], true);

    // So late that its window is over: nothing is sent (no flood of a whole window's backlog).
    let out = tmp.path().join("too-late");
    let at = start_before(Duration::from_secs(30));
    let args = [
        "--url", &url, "--connections", "2", "--rate", "50", "--warmup", "1s", "--duration", "2s", "--shard", "0/2", "--start-at", &at, "--out", out.to_str().unwrap(),
    ];
    let o = loadgen(&args, Duration::from_secs(40));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let s = summary(&out.join("shard-0"));
    assert!(!s.complete && s.reason.as_deref().unwrap_or("").contains("measured window had already ended"), "{:?}", s.reason);
    assert_eq!(s.messages.sent, 0);
    assert!(s.start.as_ref().unwrap().late);
}

/// An open-loop scenario small enough for a test: 5 connections at 400 msgs/s.
const SCENARIO: &str = r#"name = "sharded-open"
trials = 1

[load]
connections = 5
connect_rate = 100
rate = 400
warmup = "500ms"
duration = "2s"
drain_timeout = "1s"
"#;

/// Every document of a YAML stream, as JSON values.
fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text).map(|d| serde_json::Value::deserialize(d).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))).collect()
}

fn of_kind<'a>(docs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn render(args: &[&str]) -> std::process::Output {
    wsbench().args(["k8s", "render"]).args(args).output().unwrap()
}

#[test]
fn k8s_render_prints_an_indexed_job_of_shards_that_starts_them_together() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("sharded.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let scenario = scenario.to_str().unwrap();
    let at = "2030-01-01T00:00:00Z";
    let o = render(&[scenario, "--image", "registry.example/wsbench:1", "--shards", "3", "--namespace", "bench", "--run-id", "t1", "--start-at", at]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let docs = yaml_docs(&text);

    let jobs = of_kind(&docs, "Job");
    assert_eq!(jobs.len(), 1, "{text}");
    let job = jobs[0];
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["metadata"]["namespace"], "bench");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!((spec["completions"].as_u64(), spec["parallelism"].as_u64()), (Some(3), Some(3)));
    assert_eq!(spec["backoffLimit"], 0, "a retried shard would begin late");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["securityContext"]["fsGroup"], 65532, "the image's user can write the results volume");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example/wsbench:1");
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let after = |flag: &str| args.iter().position(|a| *a == flag).map(|i| args[i + 1]);
    assert_eq!(args[0], "loadgen");
    assert_eq!(after("--shards"), Some("3"), "the index comes from JOB_COMPLETION_INDEX");
    assert_eq!(after("--start-at"), Some(at));
    assert_eq!(after("--connections"), Some("5"), "the whole load: each pod takes its part");
    assert_eq!(after("--rate"), Some("400"));
    assert_eq!(after("--out"), Some("/results/t1"));
    assert_eq!(after("--url"), Some("ws://wsbench-sharded-open-server:9001/"), "the rendered server's Service");
    assert_eq!(c["resources"]["requests"], c["resources"]["limits"], "Guaranteed QoS");
    assert!(c["resources"]["limits"]["cpu"].is_string() && c["resources"]["limits"]["memory"].is_string());
    let mounts: Vec<&str> = c["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
    assert!(mounts.contains(&"/results"), "{mounts:?}");
    assert!(text.contains("RLIMIT_NOFILE"), "the fd-limit note");

    let maps = of_kind(&docs, "ConfigMap");
    assert_eq!(maps[0]["data"]["scenario.toml"], SCENARIO, "the scenario travels unchanged");
    let claim = of_kind(&docs, "PersistentVolumeClaim");
    assert_eq!(claim.len(), 1);
    assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], claim[0]["metadata"]["name"]);
    assert_eq!(of_kind(&docs, "Deployment").len(), 1, "the built-in server, since no --target");
    assert_eq!(of_kind(&docs, "Service").len(), 1);

    // A second parser agrees, where Python has PyYAML.
    let py = std::env::var("WSBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    if std::process::Command::new(&py).args(["-c", "import yaml"]).status().map(|s| s.success()).unwrap_or(false) {
        let mut child = std::process::Command::new(&py)
            .args(["-c", "import sys, yaml; docs = list(yaml.safe_load_all(sys.stdin)); print(','.join(d['kind'] for d in docs))"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ConfigMap,PersistentVolumeClaim,Deployment,Service,Job");
    } else {
        eprintln!("PyYAML not found with {py}: the manifests were parsed by serde_yaml_ng only");
    }

    // With --target and an existing claim: no server, no claim, the pods aim at the target.
    let o = render(&[scenario, "--image", "i", "--shards", "2", "--target", "ws://ws.example:8080/echo", "--results-claim", "nfs-results"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let docs = yaml_docs(&String::from_utf8(o.stdout).unwrap());
    assert!(of_kind(&docs, "Deployment").is_empty() && of_kind(&docs, "PersistentVolumeClaim").is_empty());
    let job = of_kind(&docs, "Job")[0];
    assert!(job["metadata"].get("namespace").is_none());
    assert_eq!(job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"], "nfs-results");
    assert!(job["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap().iter().any(|a| a == "ws://ws.example:8080/echo"));

    // Bad input: exit 2 with a reason, nothing on stdout.
    for (args, why) in [
        (vec![scenario, "--image", "i", "--shards", "6"], "every shard needs a connection"),
        (vec![scenario, "--image", "i", "--shards", "0"], "at least 1"),
        (vec![scenario, "--image", "i", "--shards", "2", "--start-at", "noon"], "--start-at"),
        (vec![scenario, "--image", "i", "--shards", "2", "--target", "http://x/"], "--target"),
        (vec!["../scenarios/quick.toml", "--image", "i", "--shards", "2"], "--config"),
    ] {
        let o = render(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn k8s_render_shards_a_connection_ramp_down_to_its_fewest_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("ramp.toml");
    std::fs::write(
        &scenario,
        "name = \"ramp\"\ntrials = 1\n[load]\nconnections = 4\nrate = 800\n[[load.stages]]\nduration = \"2s\"\nrate = 800\nconnections = 12\n[[load.stages]]\nduration = \"2s\"\nrate = 800\nconnections = 2\n",
    )
    .unwrap();
    let scenario = scenario.to_str().unwrap();
    let o = render(&[scenario, "--image", "registry.example/wsbench:1", "--shards", "2", "--run-id", "t1", "--start-at", "2030-01-01T00:00:00Z"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let docs = yaml_docs(&String::from_utf8(o.stdout).unwrap());
    let job = of_kind(&docs, "Job")[0];
    let args: Vec<&str> = job["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let stages: Vec<&str> = args.windows(2).filter(|w| w[0] == "--stage").map(|w| w[1]).collect();
    assert_eq!(stages, ["2s:800:12", "2s:800:2"], "every pod runs the whole ramp and takes its places: {args:?}");
    assert!(args.windows(2).any(|w| w == ["--connections", "4"]) && args.windows(2).any(|w| w == ["--shards", "2"]), "{args:?}");
    // The ramp falls to 2 connections: a third shard would hold none then.
    let o = render(&[scenario, "--image", "registry.example/wsbench:1", "--shards", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the 2 connections its ramp falls to"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_rendered_shards_run_and_collect_refuses_until_every_one_is_there() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&[]);
    let scenario = tmp.path().join("sharded.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    // The manifest's own command line, run here as its two pods would run it.
    let at = start_at(Duration::from_secs(4));
    let o = render(&[scenario.to_str().unwrap(), "--image", "i", "--shards", "2", "--run-id", "t1", "--start-at", &at, "--target", &server.url()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let job = of_kind(&yaml_docs(&String::from_utf8(o.stdout).unwrap()), "Job")[0].clone();
    let results = tmp.path().join("results");
    let args: Vec<String> = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().replace("/results", results.to_str().unwrap()))
        .collect();
    let pods: Vec<_> = (0..2)
        .map(|i| {
            wsbench()
                .args(&args)
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, pod) in pods.into_iter().enumerate() {
        let o = finish(pod, Duration::from_secs(40));
        assert!(o.status.success(), "pod {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let run = results.join("t1");
    let parts: Vec<_> = (0..2).map(|i| summary(&run.join(format!("shard-{i}")))).collect();
    assert_eq!(parts.iter().map(|s| s.connections.established).sum::<u32>(), 5);
    assert_eq!(parts.iter().map(|s| s.messages.sent).sum::<u64>(), MEASURED);

    let collect = |dirs: &[&Path], out: &Path| wsbench().arg("collect").args(dirs).arg("--out").arg(out).arg("--scenario").arg(&scenario).output().unwrap();
    let collected = tmp.path().join("collected");

    // One shard given: refused, shard 1 named, nothing written.
    let o = collect(&[&run.join("shard-0")], &collected);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("shard 1/2"), "{stderr}");
    assert!(!collected.exists());
    // `merge` refuses the same way.
    let o = wsbench().arg("merge").arg(run.join("shard-0")).arg("--out").arg(tmp.path().join("m")).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shard 1/2"));
    // A shard whose folder exists but that has not written its summary is missing too.
    let held = tmp.path().join("held-summary.json");
    std::fs::rename(run.join("shard-1/summary.json"), &held).unwrap();
    let o = collect(&[&run], &collected);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("shard 1/2") && stderr.contains("has no summary.json"), "{stderr}");
    assert!(!collected.exists());
    std::fs::rename(&held, run.join("shard-1/summary.json")).unwrap();

    // Both: merged losslessly into a run folder.
    let o = collect(&[&run], &collected);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let trial = collected.join("default/trial-1");
    let merged = summary(&trial);
    assert_eq!(merged.latency_us.count, parts.iter().map(|s| s.latency_us.count).sum::<u64>(), "the merged histogram holds every shard's values");
    assert_eq!(merged.messages.sent, MEASURED);
    assert_eq!((merged.connections.established, merged.config.connections, merged.config.rate), (5, 5, Some(400.0)));
    assert!(merged.shard.is_none(), "the merged result is the whole load");
    assert!(merged.passed(), "{:?} {:?}", merged.reason, merged.failed_checks);
    let log = wsbench_core::hist::read_interval_log(&trial.join("latency.hlog")).unwrap();
    let per_shard: u64 = (0..2).map(|i| wsbench_core::hist::total(&wsbench_core::hist::read_interval_log(&run.join(format!("shard-{i}/latency.hlog"))).unwrap()).len()).sum();
    assert_eq!(wsbench_core::hist::total(&log).len(), per_shard);
    let manifest = json(&collected.join("run.json"));
    assert_eq!(manifest["scenario"], "sharded-open");
    assert_eq!(manifest["scenario_text"], SCENARIO);

    // Collecting again into the same folder would replace that run: refused, exit 2.
    let o = collect(&[&run], &collected);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds a run"));

    // The collected run is an ordinary run: report and compare read it.
    let o = wsbench().arg("report").arg(&collected).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(collected.join("report/report.md").is_file());
    let o = wsbench().arg("compare").arg(&collected).arg(&collected).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
