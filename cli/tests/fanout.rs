//! Broadcast, push and sink end to end: the real `wsbench server` and `wsbench loadgen`
//! processes on 127.0.0.1, judged by their exit codes and result files.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{json, loadgen, serial, summary, wsbench, Server};
use wsbench_core::result::{FanoutReport, LoadgenSummary};

const LIMIT: Duration = Duration::from_secs(60);

fn out_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fanout-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs the load generator into `dir` and returns its summary, with its stderr on failure.
fn run_loadgen(url: &str, dir: &Path, extra: &[&str]) -> (i32, LoadgenSummary) {
    let mut args = vec!["--url", url, "--out", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = loadgen(&args, LIMIT);
    let code = out.status.code().unwrap_or(-1);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    (code, summary(dir))
}

/// Stops the server with SIGTERM and reads its `server.json`.
fn stop(mut server: Server, dir: &Path) -> serde_json::Value {
    server.signal(libc::SIGTERM);
    assert!(server.wait(Duration::from_secs(10)).is_some_and(|s| s.success()), "the server exits 0 on SIGTERM");
    json(&dir.join("server.json"))
}

fn fanout(s: &LoadgenSummary) -> &FanoutReport {
    s.fanout.as_ref().expect("a one-way run reports fanout")
}

/// One publisher, a room of 100: every member gets every broadcast, and a broadcast completes
/// no sooner than its deliveries (quantile by quantile, as the maximum of each broadcast's).
fn room_of_100(engine: &str) -> serde_json::Value {
    let _serial = serial();
    let srv_dir = out_dir(&format!("room100-{engine}-server"));
    let server = Server::start(&["--engine", engine, "--workload", "broadcast", "--out", srv_dir.to_str().unwrap()]);
    let dir = out_dir(&format!("room100-{engine}"));
    let (code, s) = run_loadgen(
        &server.url(),
        &dir,
        &["--workload", "broadcast", "--connections", "100", "--publishers", "1", "--rate", "220", "--warmup", "1s", "--duration", "5s", "--threads", "2"],
    );
    let f = fanout(&s);
    assert_eq!(code, 0, "{:?} {:?}", s.failed_checks, s.reason);
    assert_eq!((f.room_size_min, f.room_size_max), (100, 100));
    assert!(f.published >= 1000, "{f:?}");
    assert_eq!(f.expected_deliveries, f.published * 99, "every other member of the room");
    assert_eq!(f.delivered, f.expected_deliveries, "{f:?}");
    assert_eq!(f.reach, 1.0);
    assert!(f.missing.is_empty(), "{:?}", f.missing);
    assert_eq!((f.completed, f.incomplete), (f.published, 0));
    let c = f.completion_us.expect("broadcast reports completion");
    let d = s.latency_us;
    assert_eq!(d.count, f.delivered);
    assert!(c.p50 >= d.p50 && c.p99 >= d.p99 && c.max >= d.max, "completion {c:?} vs delivery {d:?}");
    for log in ["latency.hlog", "completion.hlog", "send_lag.hlog"] {
        assert!(dir.join(log).is_file(), "{log}");
    }
    // Each receiving member's first delivery (the publisher receives none of its own).
    assert_eq!(s.setup.first_message_us.map(|h| h.count), Some(99), "{:?}", s.setup);
    let log = std::fs::read(dir.join("first_message.hlog")).unwrap();
    let first = wsbench_core::hist::parse_interval_log(&log, &dir.join("first_message.hlog")).unwrap();
    assert_eq!(wsbench_core::hist::total(&first).len(), 99);
    let v = stop(server, &srv_dir);
    assert_eq!(v["fanout"]["slow_receivers_closed"], 0, "{v}");
    v
}

#[test]
fn a_room_of_100_is_reached_fully_zero_alloc_without_allocating() {
    let v = room_of_100("zero-alloc");
    // Every delivery (about 109,000 here, warm-up aside) is queued and written by the zero-alloc
    // engine without a heap allocation: the worker threads made none between the first and the
    // last measured message.
    assert!(v["fanout"]["deliveries"].as_u64().unwrap() >= 100_000, "{v}");
    assert_eq!(v["worker_allocations_per_message"], 0.0, "{v}");
}

#[test]
fn a_room_of_100_is_reached_fully_tungstenite() {
    let v = room_of_100("tungstenite");
    assert!(v["fanout"]["deliveries"].as_u64().unwrap() >= 100_000, "{v}");
}

/// A member that never reads: connects to room 0 with a 4 KiB receive buffer, then stops.
fn stalled_member(addr: &str) -> TcpStream {
    let sock = socket_with_small_rcvbuf(addr);
    let mut s = sock;
    write!(s, "GET /room/0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 1024 {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s
}

fn socket_with_small_rcvbuf(addr: &str) -> TcpStream {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    // SAFETY: plain socket calls on a descriptor this function owns until it is wrapped.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &size as *const _ as *const libc::c_void, std::mem::size_of::<libc::c_int>() as u32);
        let std::net::SocketAddr::V4(v4) = addr else { panic!("IPv4 only") };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(fd, &sin as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in>() as u32);
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        use std::os::fd::FromRawFd;
        TcpStream::from_raw_fd(fd)
    }
}

/// One member stops reading: the server drops it (1008) once its queue is full and counts it;
/// the other members keep getting every broadcast.
fn stalled_member_is_dropped(engine: &str) {
    let _serial = serial();
    let srv_dir = out_dir(&format!("stalled-{engine}-server"));
    let server = Server::start(&["--engine", engine, "--workload", "broadcast", "--out", srv_dir.to_str().unwrap()]);
    let stalled = stalled_member(&server.addr);
    let dir = out_dir(&format!("stalled-{engine}"));
    let (code, s) = run_loadgen(
        &server.url(),
        &dir,
        &["--workload", "broadcast", "--connections", "20", "--publishers", "2", "--rate", "400", "--size", "8KiB", "--warmup", "1s", "--duration", "3s"],
    );
    let f = fanout(&s);
    assert_eq!(code, 0, "{:?} {:?}", s.failed_checks, s.reason);
    assert_eq!(f.reach, 1.0, "the members that read got everything: {f:?}");
    assert_eq!(f.delivered, f.published * 19);
    let v = stop(server, &srv_dir);
    assert_eq!(v["fanout"]["slow_receivers_closed"], 1, "{v}");
    assert!(v["fanout"]["deliveries_dropped"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["limits_reached"]["slow_consumers"].as_u64().unwrap() >= 1, "{v}");
    assert!(stalled.as_raw_fd() >= 0, "held to the end");
}

#[test]
fn a_stalled_member_is_dropped_without_stalling_its_room_zero_alloc() {
    stalled_member_is_dropped("zero-alloc");
}

#[test]
fn a_stalled_member_is_dropped_without_stalling_its_room_tungstenite() {
    stalled_member_is_dropped("tungstenite");
}

/// The server pushes on its own schedule; a 100 ms pause every second shows in the one-way
/// latency measured from the intended send time, and nothing is skipped.
#[test]
fn push_shows_a_server_pause_in_one_way_latency() {
    let _serial = serial();
    let srv_dir = out_dir("push-server");
    let server = Server::start(&[
        "--engine", "zero-alloc", "--workload", "push", "--push-rate", "200", "--push-size", "64",
        "--pause-every", "1s", "--pause-for", "100ms", "--out", srv_dir.to_str().unwrap(),
    ]);
    let dir = out_dir("push");
    let (code, s) = run_loadgen(&server.url(), &dir, &["--workload", "push", "--push-rate", "200", "--connections", "10", "--warmup", "1s", "--duration", "3s"]);
    let f = fanout(&s);
    assert_eq!(code, 0, "{:?} {:?}", s.failed_checks, s.reason);
    assert!(f.expected_deliveries >= 10 * 590, "{f:?}");
    assert_eq!((f.reach, f.gaps), (1.0, 0), "{f:?}");
    assert!(s.latency_us.max >= 50_000.0, "a 100 ms pause shows: {:?}", s.latency_us);
    assert_eq!(s.setup.first_message_us.map(|h| h.count), Some(10), "one first delivery per connection: {:?}", s.setup);
    let v = stop(server, &srv_dir);
    assert!(v["pauses"].as_u64().unwrap() >= 3, "{v}");
}

/// Sink: the load generator sends, nothing comes back, the server records one-way latency.
#[test]
fn sink_counts_on_the_server() {
    let _serial = serial();
    let srv_dir = out_dir("sink-server");
    let server = Server::start(&["--workload", "sink", "--out", srv_dir.to_str().unwrap()]);
    let dir = out_dir("sink");
    let (code, s) = run_loadgen(&server.url(), &dir, &["--workload", "sink", "--connections", "4", "--rate", "400", "--warmup", "1s", "--duration", "2s"]);
    assert_eq!(code, 0, "{:?} {:?}", s.failed_checks, s.reason);
    assert!(s.messages.sent >= 780, "{:?}", s.messages);
    let v = stop(server, &srv_dir);
    assert!(v["one_way_latency_us"]["count"].as_u64().unwrap() >= s.messages.sent, "{v}");
    assert_eq!(v["counts"]["messages_out"], 0, "{v}");
}

/// Bad input: a room the server does not have is a clear 404; a broadcast without a rate is a
/// usage error (exit 2).
#[test]
fn bad_rooms_and_missing_rates_are_refused_clearly() {
    let server = Server::start(&["--workload", "broadcast", "--rooms", "2"]);
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(s, "GET /room/2 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 404") && answer.contains("no room 2: this server has 2"), "{answer}");
    let out = loadgen(&["--url", &server.url(), "--workload", "broadcast", "--connections", "4"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --rate"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A broadcast over `wss://` through the same seam as echo: the server's certificate checked
/// against `--ca`, a token minted for each room's path, a subprotocol and a header offered;
/// every member reached, and one TLS handshake time per connection.
#[test]
fn broadcast_over_wss_with_ca_token_subprotocol_and_header() {
    let _serial = serial();
    let srv_dir = out_dir("wss-server");
    std::fs::create_dir_all(&srv_dir).unwrap();
    let tls = ::wsbench::tls::throwaway(&srv_dir).unwrap();
    let secret = srv_dir.join("token-secret");
    std::fs::write(&secret, "a secret of more than sixteen bytes\n").unwrap();
    let (cert, key, ca, secret) = (tls.cert.to_str().unwrap(), tls.key.to_str().unwrap(), tls.ca.to_str().unwrap(), secret.to_str().unwrap());
    let server = Server::start(&[
        "--workload", "broadcast", "--rooms", "2", "--tls-cert", cert, "--tls-key", key, "--token-secret", secret,
        "--subprotocols", "chat", "--require-subprotocol", "--out", srv_dir.to_str().unwrap(),
    ]);
    let url = format!("wss://{}/", server.addr);
    let dir = out_dir("wss");
    let (code, s) = run_loadgen(
        &url,
        &dir,
        &[
            "--workload", "broadcast", "--rooms", "2", "--connections", "20", "--publishers", "2", "--rate", "200",
            "--warmup", "500ms", "--duration", "2s", "--ca", ca, "--token-secret", secret, "--subprotocol", "chat",
            "--header", "Authorization: Bearer s3cret-value",
        ],
    );
    let f = fanout(&s);
    assert_eq!(code, 0, "{:?} {:?} {:?}", s.failed_checks, s.reason, s.connections.failures);
    assert!(f.published >= 390, "{f:?}");
    assert_eq!(f.expected_deliveries, f.published * 9, "every other member of each room of 10");
    assert_eq!((f.delivered, f.reach), (f.expected_deliveries, 1.0), "{f:?}");
    let t = s.setup.tls.as_ref().expect("a wss:// run says how it trusted the server");
    assert_eq!((t.trust.as_str(), t.insecure), ("ca", false));
    assert_eq!(s.setup.tls_us.map(|h| h.count), Some(20), "one TLS handshake per connection");
    assert_eq!(s.setup.handshake_us.map(|h| h.count), Some(20));
    assert_eq!(s.setup.subprotocols, std::collections::BTreeMap::from([("chat".to_owned(), 20)]));
    for log in ["tls.hlog", "connect.hlog", "handshake.hlog"] {
        assert!(dir.join(log).is_file(), "{log}");
    }
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    assert!(!text.contains("s3cret-value") && text.contains("Authorization"), "header values are redacted");
    let v = stop(server, &srv_dir);
    assert_eq!(v["limits_reached"]["tls_failures"], 0, "{v}");

    // Without --ca the system's roots do not know the throwaway CA: every connection fails,
    // named by its cause, and the run fails.
    let server = Server::start(&["--workload", "broadcast", "--tls-cert", cert, "--tls-key", key]);
    let out = loadgen(&["--url", &format!("wss://{}/", server.addr), "--workload", "broadcast", "--connections", "2", "--rate", "10", "--duration", "1s"], LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TLS error"), "{stderr}");
}

/// A wall-clock instant `ahead` from now, as `--start-at` takes it.
fn start_at(ahead: Duration) -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now() + ahead).to_string()
}

/// One room of 20 with a publisher in each of two shards: every member gets every broadcast
/// across the shards, and `wsbench collect` adds the shards up to the one-process run's counts
/// exactly (the schedule fixes how many messages each publisher sends in the window).
#[test]
fn two_shards_of_a_broadcast_room_collect_to_the_one_process_run() {
    let _serial = serial();
    let srv_dir = out_dir("shards-server");
    let server = Server::start(&["--workload", "broadcast", "--out", srv_dir.to_str().unwrap()]);
    let url = server.url();
    let load = ["--url", &url, "--workload", "broadcast", "--connections", "20", "--publishers", "2", "--rate", "200", "--warmup", "500ms", "--duration", "2s"];

    let one = out_dir("shards-one");
    let out = loadgen(&[&load[..], &["--out", one.to_str().unwrap()]].concat(), LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let whole = summary(&one);

    // Without a shared start a room's shards could not keep one schedule.
    let out = loadgen(&[&load[..], &["--shard", "0/2"]].concat(), LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--start-at"));

    let dir = out_dir("shards");
    let at = start_at(Duration::from_secs(3));
    let shards: Vec<_> = (0..2)
        .map(|i| {
            let shard = format!("{i}/2");
            let args: Vec<String> = [&load[..], &["--shard", &shard, "--start-at", &at, "--out", dir.to_str().unwrap()]].concat().iter().map(|s| s.to_string()).collect();
            std::thread::spawn(move || loadgen(&args.iter().map(String::as_str).collect::<Vec<_>>(), LIMIT))
        })
        .collect();
    for (i, h) in shards.into_iter().enumerate() {
        let out = h.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "shard {i}: {}", String::from_utf8_lossy(&out.stderr));
        let s = summary(&dir.join(format!("shard-{i}")));
        let f = fanout(&s);
        assert_eq!(s.connections.established, 10);
        assert_eq!(f.published, whole.fanout.as_ref().unwrap().published / 2, "one publisher per shard");
        assert_eq!(f.reach, 1.0, "shard {i}: {f:?}");
        assert!(f.completion_within_shard && f.completed == f.published * 2, "each shard completes both publishers' broadcasts: {f:?}");
    }

    let run = out_dir("shards-collected");
    let out = wsbench().arg("collect").arg(&dir).arg("--out").arg(&run).arg("--config").arg("room").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let merged = summary(&run.join("room").join("trial-1"));
    let (m, w) = (fanout(&merged), fanout(&whole));
    assert_eq!((m.published, m.expected_deliveries, m.delivered), (w.published, w.expected_deliveries, w.delivered), "{m:?} vs {w:?}");
    assert_eq!(w.delivered, w.published * 19);
    assert_eq!((m.reach, merged.latency_us.count), (1.0, w.delivered));
    assert!(m.missing.is_empty() && merged.failed_checks.is_empty() && merged.complete, "{merged:?}");
    assert_eq!(m.completion_us.map(|c| c.count), Some(m.completed), "completion merged from both shards' logs");
    assert!(run.join("room/trial-1/completion.hlog").is_file());
    // The report reads the collected run and says whose completion it shows.
    let out = wsbench().arg("report").arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = std::fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(report.contains("(within a shard)") && report.contains("lower bound of the room's completion"), "{report}");
    stop(server, &srv_dir);
}

/// `processes = 2` of a broadcast in a scenario: `wsbench run` starts the two load generators
/// as shards of the room with a shared start, and the trial's merged result is the whole
/// room's: every publisher's broadcasts reach every other member, across the processes.
#[test]
fn a_broadcast_in_two_processes_runs_as_two_shards_of_one_room() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("room2.toml");
    std::fs::write(
        &path,
        "name = \"room2\"\ntrials = 1\n[server]\nworkload = \"broadcast\"\n[load]\nconnections = 20\npublishers = 2\nrate = 200\nwarmup = \"500ms\"\nduration = \"2s\"\nprocesses = 2\n[[configs]]\nname = \"default\"\n",
    )
    .unwrap();
    let results = tmp.path().join("results");
    let out = common::run_r1(&path, &results, &[], Duration::from_secs(90));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let trial = results.join("room2/r1/default/trial-1");
    for i in 0..2u32 {
        let part = summary(&trial.join(format!("loadgen-{i}")));
        let shard = part.shard.as_ref().expect("each process ran as a shard of the room");
        assert_eq!((shard.index, shard.count, part.connections.established), (i, 2, 10));
        assert!(part.start.as_ref().is_some_and(|st| !st.late), "the shards began together: {:?}", part.start);
        assert_eq!(fanout(&part).reach, 1.0, "shard {i}");
    }
    let merged = summary(&trial);
    let f = fanout(&merged);
    // Two publishers at 100 msgs/s each for 2 s; each broadcast goes to the 19 other members.
    assert_eq!(f.published, 400, "{f:?}");
    assert_eq!((f.expected_deliveries, f.delivered, f.reach), (f.published * 19, f.published * 19, 1.0), "{f:?}");
    assert_eq!(merged.latency_us.count, f.delivered);
    assert!(f.missing.is_empty() && merged.failed_checks.is_empty() && merged.complete, "{merged:?}");
    let server = json(&trial.join("server.json"));
    assert_eq!(server["counts"]["connections_accepted"].as_u64(), Some(20));
}

/// `wsbench k8s render` of a broadcast scenario: the built-in server serves the rooms, and each
/// pod runs its shard of the room with the shared start.
#[test]
fn k8s_render_splits_a_broadcast_room_over_shards() {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/broadcast.toml");
    let out = wsbench()
        .args(["k8s", "render"])
        .arg(&scenario)
        .args(["--image", "registry.example/wsbench:1", "--shards", "4", "--config", "zero-alloc-room-1000", "--start-at", "2030-01-01T00:00:00Z"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let job = text.split("\n---").find(|d| d.contains("kind: Job")).expect("an Indexed Job");
    for expected in ["- --workload\n", "- broadcast\n", "- --shards\n", "- '4'", "- --start-at\n", "- --connections\n", "- '1000'"] {
        assert!(job.contains(expected), "{expected:?} missing from\n{job}");
    }
    let deployment = text.split("\n---").find(|d| d.contains("kind: Deployment")).expect("the built-in server");
    assert!(deployment.contains("broadcast"), "{deployment}");
}
