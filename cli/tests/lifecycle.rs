//! End to end: the life of a connection. Churn (connections closed and reopened under load)
//! against the built-in server, through `wsbench run` and the scenario keys users write.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;

fn run_scenario(dir: &Path, name: &str, text: &str, extra: &[&str]) -> (std::process::Output, std::path::PathBuf) {
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, text).unwrap();
    let results = dir.join("results");
    (run_r1(&path, &results, extra, Duration::from_secs(90)), results.join(name).join("r1"))
}

/// Runs a closed-loop churn scenario on `engine` with `churn` (scenario keys) and checks what
/// every churn run must show; returns the summary.
fn churn_run(engine: &str, churn: &str, report_says: &str) -> wsbench_core::result::LoadgenSummary {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let (out, run) = run_scenario(
        tmp.path(),
        "churn",
        &format!("name = \"churn\"\ntrials = 1\n[load]\nengine = \"{engine}\"\nconnections = 4\nin_flight = 1\nwarmup = \"300ms\"\nduration = \"2s\"\n{churn}\n[[configs]]\nname = \"default\"\n"),
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let s = summary(&run.join("default/trial-1"));
    let churn = s.connections.churn.as_ref().expect("summary.json has connections.churn");
    assert!(churn.opened_in_window > 0 && churn.opened >= churn.opened_in_window, "{churn:?}");
    assert_eq!(churn.unclean, 0, "{:?}", churn.closes);
    assert_eq!(churn.clean, churn.opened, "every replaced connection closed cleanly before its replacement opened: {churn:?}");
    assert_eq!(churn.closes.keys().collect::<Vec<_>>(), ["close 1000 normal closure"]);
    assert!(churn.opened_per_s > 0.0);
    assert!(churn.allocations_per_replacement.is_some_and(|a| a > 0.0), "opening a connection allocates, and the figure says how much: {churn:?}");
    assert_eq!((s.messages.lost, s.messages.errors, s.connections.failed), (0, 0, 0));
    // The handshake histogram holds the replacements' handshakes too.
    let hs = s.setup.handshake_us.expect("handshake_us");
    assert_eq!(hs.count, u64::from(s.connections.established) + churn.opened);
    // The server saw the same: every connection accepted.
    let server = json(&run.join("default/trial-1/server.json"));
    assert_eq!(server["counts"]["connections_accepted"].as_u64(), Some(u64::from(s.connections.established) + churn.opened));
    let report = fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(report.contains("## Connection churn"), "{report}");
    assert!(report.contains(report_says), "{report}");
    s
}

/// Each place reopens after every 10th message: within the window, one replacement per 10
/// messages, give or take one per connection at each edge of the window.
fn assert_one_replacement_per_10_messages(s: &wsbench_core::result::LoadgenSummary) {
    let churn = s.connections.churn.as_ref().unwrap();
    let sent = s.messages.sent;
    assert!(sent >= 200, "too few messages to judge: {sent}");
    let expected = sent as f64 / 10.0;
    let slack = 2.0 * f64::from(s.connections.established) + expected * 0.02;
    assert!((churn.opened_in_window as f64 - expected).abs() <= slack, "opened {} in the window for {sent} messages", churn.opened_in_window);
}

#[test]
fn reconnecting_after_10_messages_opens_one_connection_per_10_messages_and_closes_cleanly() {
    let s = churn_run("tungstenite", "reconnect_after = 10", "reconnect after 10 messages");
    assert_one_replacement_per_10_messages(&s);
}

#[test]
fn the_zero_alloc_client_reconnects_after_10_messages_the_same_way() {
    let s = churn_run("zero-alloc", "reconnect_after = 10", "reconnect after 10 messages");
    assert_one_replacement_per_10_messages(&s);
    assert_eq!(s.config.engine, wsbench_core::plan::Engine::ZeroAlloc);
}

#[test]
fn the_zero_alloc_client_replaces_connections_at_the_end_of_their_lifetime() {
    let s = churn_run("zero-alloc", "connection_lifetime = \"100ms\"", "connections live 100ms");
    let churn = s.connections.churn.as_ref().unwrap();
    // 4 places, each replaced every 100 ms (plus the swap's time) over a 2 s window: 80 at most.
    assert!((50..=84).contains(&churn.opened_in_window), "{} replacements in the window", churn.opened_in_window);
}

#[test]
fn churn_without_a_lifetime_to_jitter_is_refused_with_exit_2() {
    let out = loadgen(&["--url", "ws://127.0.0.1:9/", "--lifetime-jitter", "10%"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2), "jitter without a lifetime");
}

#[test]
fn a_step_between_two_stages_shows_in_intervals_csv_at_the_boundary() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    // 2 s at 400 msgs/s (the warm-up's rate), a step, 2 s at 2,000 msgs/s; 250 ms intervals.
    let (out, run) = run_scenario(
        tmp.path(),
        "ramp",
        "name = \"ramp\"\ntrials = 1\n[load]\nconnections = 4\nrate = 400\nwarmup = \"300ms\"\ninterval = \"250ms\"\n\
         [[load.stages]]\nduration = \"2s\"\nrate = 400\n[[load.stages]]\nduration = \"0s\"\nrate = 2000\n[[load.stages]]\nduration = \"2s\"\nrate = 2000\n\
         [[configs]]\nname = \"default\"\n",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let trial = run.join("default/trial-1");
    let s = summary(&trial);
    assert_eq!(s.config.duration, Duration::from_secs(4), "the window is the stages' sum");
    // 400·2 + 2,000·2 messages over 4 s.
    let asked = s.rate.expect("open loop").asked_msgs_per_s;
    assert!((asked - 1_200.0).abs() < 1.0, "asked {asked}");
    let mut csv = csv::Reader::from_path(trial.join("intervals.csv")).unwrap();
    let rows: Vec<wsbench_core::result::IntervalRow> = csv.deserialize().map(|r| r.unwrap()).collect();
    assert!(rows.len() >= 15, "{} rows", rows.len());
    // The first interval sending more than halfway between the two rates starts at the step.
    let midway = (400.0 + 2_000.0) / 2.0 * 0.25;
    let first_high = rows.iter().position(|r| r.sent as f64 > midway).expect("the rate stepped up");
    let start_s = if first_high == 0 { 0.0 } else { rows[first_high - 1].elapsed_s };
    assert!((start_s - 2.0).abs() <= 0.25 + 1e-6, "the step shows at {start_s} s, not at 2 s: {rows:?}");
    // Every interval knows its stage: 1 before the step, 3 after it.
    for r in &rows {
        let mid = r.elapsed_s - 0.125;
        let expected = if mid < 2.0 { 1 } else { 3 };
        assert_eq!(r.stage, Some(expected), "{r:?}");
    }
    let before: u64 = rows.iter().filter(|r| r.elapsed_s <= 1.75 + 1e-6).map(|r| r.sent).sum();
    assert!((before as f64 - 700.0).abs() <= 70.0, "{before} sent in the first 1.75 s at 400 msgs/s");
    let report = fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(report.contains("2. a step to 2,000 msgs/s"), "the report lists the stages: {report}");
}

#[test]
fn the_idle_warmup_scenario_draws_one_line_per_setting() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/idle-warmup.toml");
    let text = fs::read_to_string(scenario).unwrap();
    let (out, run) = run_scenario(tmp.path(), "idle-warmup", &text, &["--set", "load.idle=[\"10ms\",\"50ms\"]", "--set", "load.connections=3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for (config, nodelay, ping) in [("nodelay", true, false), ("nodelay-heartbeat", true, true), ("nagle", false, false), ("nagle-heartbeat", false, true)] {
        let s = summary(&run.join(config).join("trial-1"));
        assert_eq!((s.config.nodelay, s.config.ping_interval.is_some()), (nodelay, ping), "{config}");
        let idle: Vec<f64> = s.idle.iter().map(|p| p.idle_s).collect();
        assert_eq!(idle, [0.01, 0.05], "{config}");
        for p in &s.idle {
            assert_eq!((p.latency_us.count, p.lost), (3, 0), "{config}: one probe per connection");
            assert!(p.latency_us.p50 > 0.0);
        }
        assert_eq!(s.messages.received, 6);
    }
    let report = fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(report.contains("## First message after idle") && report.contains("RFC 5681"), "{report}");
    for config in ["nodelay-heartbeat", "nagle"] {
        assert!(report.contains(&format!("| {config}")), "{config} has a row: {report}");
    }
    let png = run.join("report/latency-vs-idle.png");
    assert!(fs::metadata(&png).map(|m| m.len() > 10_000).unwrap_or(false), "{} drawn", png.display());
}

/// The `intervals.csv` rows of a trial.
fn interval_rows(trial: &Path) -> Vec<wsbench_core::result::IntervalRow> {
    let mut csv = csv::Reader::from_path(trial.join("intervals.csv")).unwrap();
    csv.deserialize().map(|r| r.unwrap()).collect()
}

/// Checks a 5 → 20 → 5 connection ramp (2 s at 5, 2 s up to 20, 1 s down to 5; 1,000 msgs/s;
/// 250 ms intervals): what intervals.csv, summary.json and the server saw.
fn assert_ramp_5_20_5(trial: &Path) -> wsbench_core::result::LoadgenSummary {
    let s = summary(trial);
    assert_eq!((s.config.connections, s.config.first_connections()), (20, 5), "the plan holds the most open at once and starts from 5");
    let rows = interval_rows(trial);
    assert!(rows.len() >= 19, "{} rows", rows.len());
    let stage = |k: u32| rows.iter().filter(move |r| r.stage == Some(k));
    // The first stage holds the load's 5; nothing opens before the ramp begins.
    assert!(stage(1).all(|r| (r.open_min, r.open_max) == (5, 5)), "stage 1: {rows:?}");
    // The second stage opens one connection at a time up to 20, reached before its end.
    let up: Vec<u32> = stage(2).map(|r| r.open_max).collect();
    assert!(up.windows(2).all(|w| w[0] <= w[1]), "the open count only rises in stage 2: {up:?}");
    assert_eq!(up.last(), Some(&20), "stage 2 reaches 20: {up:?}");
    assert!(up[0] < 12, "and starts near 5: {up:?}");
    // The third closes them again, back to 5 by the end.
    assert_eq!(stage(3).next_back().map(|r| r.open_min), Some(5), "{rows:?}");
    // Every message once: the schedule's 5,000 measured messages, none twice (a ramp that
    // handed a message to two connections would send more).
    let planned = 5_000;
    assert!(s.messages.sent <= planned + 1 && s.messages.sent as f64 >= 0.97 * planned as f64, "sent {} of {planned}", s.messages.sent);
    assert_eq!((s.messages.lost, s.messages.errors, s.messages.corrupted, s.connections.failed), (0, 0, 0, 0));
    // 15 opened on the way up, 15 closed cleanly on the way down.
    let ch = s.connections.churn.as_ref().expect("the ramp's opens and closes are in connections.churn");
    assert_eq!((ch.opened, ch.clean, ch.unclean), (15, 15, 0), "{ch:?}");
    assert_eq!(ch.closes.keys().collect::<Vec<_>>(), ["close 1000 normal closure"]);
    assert_eq!(s.setup.handshake_us.expect("handshake_us").count, 20, "every connection's handshake is timed");
    assert_eq!(s.connections.held, Some(5));
    assert!(s.warnings.iter().all(|w| w.kind != wsbench_core::warning::WarningKind::ConnectionsNotHeld), "holding 5 of 20 is the plan, not a shortfall: {:?}", s.warnings);
    s
}

#[test]
fn a_connection_ramp_opens_connections_up_to_the_stage_s_count_and_closes_them_cleanly_on_the_way_down() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let (out, run) = run_scenario(
        tmp.path(),
        "connramp",
        "name = \"connramp\"\ntrials = 1\n[load]\nconnections = 5\nrate = 1000\nwarmup = \"300ms\"\ninterval = \"250ms\"\n\
         [[load.stages]]\nduration = \"2s\"\nrate = 1000\n[[load.stages]]\nduration = \"2s\"\nrate = 1000\nconnections = 20\n[[load.stages]]\nduration = \"1s\"\nrate = 1000\nconnections = 5\n\
         [[configs]]\nname = \"default\"\n",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let trial = run.join("default/trial-1");
    assert_ramp_5_20_5(&trial);
    let server = json(&trial.join("server.json"));
    assert_eq!(server["counts"]["connections_accepted"].as_u64(), Some(20));
    let report = fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(report.contains("2. 2s to 1,000 msgs/s and 20 connections"), "the report lists the stages with their connections: {report}");
}

#[test]
fn the_zero_alloc_client_ramps_connections_from_the_command_line_too() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&[]);
    let out_dir = tmp.path().join("out");
    let out = loadgen(
        &[
            "--url", &server.url(), "--engine", "zero-alloc", "--connections", "5", "--rate", "1000", "--warmup", "300ms", "--interval", "250ms",
            "--stage", "2s:1000", "--stage", "2s:1000:20", "--stage", "1s:1000:5", "--out", out_dir.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let s = assert_ramp_5_20_5(&out_dir);
    assert_eq!(s.config.engine, wsbench_core::plan::Engine::ZeroAlloc);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("15 connections opened as the ramp reached them"), "{stdout}");
}

#[test]
fn a_connection_ramp_to_zero_or_over_more_shards_than_its_fewest_connections_is_refused_with_exit_2() {
    let out = loadgen(&["--url", "ws://127.0.0.1:9/", "--rate", "100", "--stage", "1s:100:0"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one connection"), "{}", String::from_utf8_lossy(&out.stderr));
    // Falling to 2 connections, a third shard would hold none.
    let out = loadgen(&["--url", "ws://127.0.0.1:9/", "--rate", "100", "--connections", "4", "--stage", "1s:100:2", "--shard", "2/3"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 2 shards"), "{}", String::from_utf8_lossy(&out.stderr));
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = run_scenario(
        tmp.path(),
        "toofew",
        "name = \"toofew\"\ntrials = 1\n[load]\nconnections = 4\nrate = 100\nprocesses = 3\n[[load.stages]]\nduration = \"1s\"\nrate = 100\nconnections = 2\n[[configs]]\nname = \"default\"\n",
        &["--dry-run"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the 2 connections the ramp in `stages` falls to"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A 4 → 12 → 4 connection ramp at 800 msgs/s: 1 s at 4, 2 s up to 12, 2 s down to 4, in
/// 250 ms intervals after a 300 ms warm-up (scenario keys; `extra` goes before the stages).
fn ramp_4_12_4(name: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\ntrials = 1\n[load]\nconnections = 4\nrate = 800\nwarmup = \"300ms\"\ninterval = \"250ms\"\n{extra}\n\
         [[load.stages]]\nduration = \"1s\"\nrate = 800\n[[load.stages]]\nduration = \"2s\"\nrate = 800\nconnections = 12\n[[load.stages]]\nduration = \"2s\"\nrate = 800\nconnections = 4\n\
         [[configs]]\nname = \"default\"\n"
    )
}

/// The fewest and most connections open in each of the 20 rows of [`ramp_4_12_4`], by the
/// ramp's rule: each change falls halfway between two whole counts, here every 250 ms from
/// 1.125 s, mid-interval, so every row knows its fewest and most exactly. `share` gives a
/// shard's part of a count (its places `i, i + n, ...` below it).
fn ramp_4_12_4_rows(share: impl Fn(u32) -> u32) -> Vec<(u32, u32)> {
    (0..20u32)
        .map(|k| match k {
            0..=3 => (4, 4),
            4..=11 => (k, k + 1),
            _ => (23 - k, 24 - k),
        })
        .map(|(a, b)| (share(a), share(b)))
        .collect()
}

/// The measured rows' fewest and most open connections (the last row also holds the drain).
fn open_rows(dir: &Path) -> Vec<(u32, u32)> {
    let rows = interval_rows(dir);
    assert!(rows.len() >= 20, "{} rows: {rows:?}", rows.len());
    rows.iter().take(20).map(|r| (r.open_min, r.open_max)).collect()
}

/// What every run of [`ramp_4_12_4`] must show, whether in one process or in shards: the
/// schedule's messages each sent once and answered, and open counts that follow the ramp.
fn assert_ramp_4_12_4(trial: &Path) -> wsbench_core::result::LoadgenSummary {
    let s = summary(trial);
    assert_eq!((s.config.connections, s.config.first_connections()), (12, 4), "the whole load: at most 12 open, 4 at the start");
    assert_eq!(open_rows(trial), ramp_4_12_4_rows(|c| c), "open counts per interval");
    let planned = 4_000;
    assert!(s.messages.sent <= planned + 1 && s.messages.sent as f64 >= 0.97 * planned as f64, "sent {} of {planned}", s.messages.sent);
    assert_eq!((s.messages.lost, s.messages.errors, s.messages.corrupted, s.connections.failed), (0, 0, 0, 0));
    let ch = s.connections.churn.as_ref().expect("connections.churn");
    assert_eq!(ch.unclean, 0, "{:?}", ch.closes);
    assert_eq!(ch.closes.keys().collect::<Vec<_>>(), ["close 1000 normal closure"]);
    assert_eq!(ch.clean, ch.opened, "every connection opened after the start closed once, cleanly (the ramp's 8 places, and churn's replacements): {ch:?}");
    assert_eq!(s.setup.handshake_us.expect("handshake_us").count, 4 + ch.opened, "every connection's handshake is timed");
    s
}

/// A rate step (400 → 1,600 msgs/s) in two processes: they run as shards from a shared start,
/// so both step at the same instant, and the trial's intervals show the one-process schedule,
/// 100 messages per 250 ms before the step and 400 after it, each to a message per shard.
#[test]
fn a_rate_step_in_two_processes_steps_at_one_instant() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let text = "name = \"ratestep\"\ntrials = 1\n[load]\nconnections = 4\nrate = 400\nwarmup = \"300ms\"\ninterval = \"250ms\"\nprocesses = 2\n\
                [[load.stages]]\nduration = \"1s\"\nrate = 400\n[[load.stages]]\nduration = \"0s\"\nrate = 1600\n[[load.stages]]\nduration = \"1s\"\nrate = 1600\n\
                [[configs]]\nname = \"default\"\n";
    let (out, run) = run_scenario(tmp.path(), "ratestep", text, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let trial = run.join("default/trial-1");
    for i in 0..2u32 {
        let part = summary(&trial.join(format!("loadgen-{i}")));
        let shard = part.shard.as_ref().expect("the process ran as a shard");
        assert_eq!((shard.index, shard.count), (i, 2));
        assert!(part.start.as_ref().is_some_and(|st| !st.late), "the shards began together: {:?}", part.start);
    }
    let s = summary(&trial);
    assert_eq!((s.messages.lost, s.messages.errors, s.connections.failed), (0, 0, 0));
    let sent: Vec<u64> = interval_rows(&trial).iter().take(8).map(|r| r.sent).collect();
    let want = [100, 100, 100, 100, 400, 400, 400, 400];
    assert!(sent.iter().zip(want).all(|(got, want)| got.abs_diff(want) <= 2), "sent per interval {sent:?}, planned {want:?}");
}

#[test]
fn a_connection_ramp_in_two_processes_runs_as_two_shards_whose_open_counts_add_up_to_the_ramp() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let (out, run) = run_scenario(tmp.path(), "rampshard", &ramp_4_12_4("rampshard", "processes = 2"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let trial = run.join("default/trial-1");
    let s = assert_ramp_4_12_4(&trial);
    let ch = s.connections.churn.as_ref().unwrap();
    assert_eq!((ch.opened, ch.clean), (8, 8), "the ramp opened places 4..11 and closed them again: {ch:?}");
    assert_eq!(s.config.stages.iter().map(|st| (st.rate, st.connections)).collect::<Vec<_>>(), [(800.0, None), (800.0, Some(12)), (800.0, Some(4))], "the merged plan is the whole load's");
    // Each process is a shard holding its places of every count: 0, 2, 4, ... and 1, 3, 5, ...
    let mut asked = Vec::new();
    for i in 0..2u32 {
        let dir = trial.join(format!("loadgen-{i}"));
        let part = summary(&dir);
        let shard = part.shard.as_ref().expect("the process ran as a shard");
        assert_eq!((shard.index, shard.count, shard.total_connections), (i, 2, 12));
        assert!(part.start.as_ref().is_some_and(|st| !st.late), "the shards began together: {:?}", part.start);
        assert_eq!((part.config.connections, part.config.first_connections()), (6, 2));
        let place_share = |c: u32| wsbench_core::plan::Shard { index: i, count: 2 }.share(c);
        assert_eq!(open_rows(&dir), ramp_4_12_4_rows(place_share), "shard {i}'s open counts");
        asked.push(part.rate.expect("open loop").asked_msgs_per_s);
    }
    // Shard 0 holds 3 of 5 places, 4 of 7, ...: asked more than half, and the two the whole.
    assert!(asked[0] > 400.0 && (asked[0] + asked[1] - 800.0).abs() < 1.0, "{asked:?}");
    let server = json(&trial.join("server.json"));
    assert_eq!(server["counts"]["connections_accepted"].as_u64(), Some(12));
    let report = fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(report.contains("2s to 800 msgs/s and 12 connections"), "the report lists the whole load's stages: {report}");
    // Its ramp table gives the summed counts per stage, and says what a sum of minima is.
    assert!(report.contains("## Connection ramps") && report.contains("lower bound"), "{report}");
    let squeezed = report.split_whitespace().collect::<Vec<_>>().join(" ");
    for row in ["| default | 1 | 1 | 4 → 4 | 4 – 4 | 2 |", "| default | 1 | 2 | 4 → 12 | 4 – 12 | 2 |", "| default | 1 | 3 | 12 → 4 | 4 – 12 | 2 |"] {
        assert!(squeezed.contains(row), "{row} in {report}");
    }
}

/// `reconnect_after = 10` on a ramp: besides the ramp's 8 openings, about one replacement per
/// 10 messages (give or take two per place at the window's edges and the ramp's steps).
fn assert_ramp_churns_every_10_messages(s: &wsbench_core::result::LoadgenSummary) {
    let ch = s.connections.churn.as_ref().unwrap();
    let expected = s.messages.sent as f64 / 10.0;
    let replaced = ch.opened_in_window as f64 - 8.0;
    assert!((replaced - expected).abs() <= 2.0 * 12.0 + 0.05 * expected, "{replaced} replaced in the window for {} messages: {ch:?}", s.messages.sent);
}

#[test]
fn a_connection_ramp_with_churn_in_two_shards_closes_every_connection_cleanly_and_follows_the_ramp() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let (out, run) = run_scenario(tmp.path(), "rampchurn", &ramp_4_12_4("rampchurn", "processes = 2\nreconnect_after = 10"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let trial = run.join("default/trial-1");
    let s = assert_ramp_4_12_4(&trial);
    assert_ramp_churns_every_10_messages(&s);
    let server = json(&trial.join("server.json"));
    assert_eq!(server["counts"]["connections_accepted"].as_u64(), Some(4 + s.connections.churn.as_ref().unwrap().opened));
}

#[test]
fn the_zero_alloc_client_churns_on_a_connection_ramp_too() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&[]);
    let out_dir = tmp.path().join("out");
    let out = loadgen(
        &[
            "--url", &server.url(), "--engine", "zero-alloc", "--connections", "4", "--rate", "800", "--warmup", "300ms", "--interval", "250ms",
            "--stage", "1s:800", "--stage", "2s:800:12", "--stage", "2s:800:4", "--reconnect-after", "10", "--out", out_dir.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let s = assert_ramp_4_12_4(&out_dir);
    assert_ramp_churns_every_10_messages(&s);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("opened as the ramp reached them or replaced under churn"), "{stdout}");
}

#[test]
fn two_shards_of_a_connection_ramp_collect_into_open_counts_that_follow_the_ramp() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&[]);
    let out_dir = tmp.path().join("out");
    // Both shards begin their warm-up at the same instant, a few seconds from now.
    let at = humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_secs(3)).to_string();
    let shards: Vec<_> = (0..2)
        .map(|i| {
            let shard = format!("{i}/2");
            let args = [
                "loadgen", "--url", &server.url(), "--connections", "4", "--rate", "800", "--warmup", "300ms", "--interval", "250ms", "--stage", "1s:800", "--stage", "2s:800:12",
                "--stage", "2s:800:4", "--shard", &shard, "--start-at", &at, "--out", out_dir.to_str().unwrap(),
            ];
            wsbench().args(args).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for (i, mut shard) in shards.into_iter().enumerate() {
        let status = wait_for(&mut shard, Duration::from_secs(60));
        if status.is_none() {
            let _ = shard.kill();
        }
        let o = shard.wait_with_output().unwrap();
        assert!(o.status.success(), "shard {i}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(open_rows(&out_dir.join(format!("shard-{i}"))), ramp_4_12_4_rows(|c| wsbench_core::plan::Shard { index: i as u32, count: 2 }.share(c)), "shard {i}");
    }
    let collected = tmp.path().join("collected");
    let o = wsbench().arg("collect").arg(&out_dir).arg("--out").arg(&collected).args(["--config", "default"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let trial = collected.join("default/trial-1");
    let s = assert_ramp_4_12_4(&trial);
    assert_eq!(s.connections.churn.as_ref().map(|c| c.opened), Some(8));
    let o = wsbench().arg("report").arg(&collected).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = fs::read_to_string(collected.join("report/report.md")).unwrap();
    let squeezed = report.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(squeezed.contains("| default | 1 | 2 | 4 → 12 | 4 – 12 | 2 |") && report.contains("lower bound"), "{report}");
}
