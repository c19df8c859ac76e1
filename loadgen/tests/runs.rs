//! Complete runs of the real binary against an echo server in the test process.

mod common;

use std::time::Duration;

use common::{out_dir, read_results, run_loadgen, serial, spawn_loadgen, wait, EchoServer, Stall};
use wsbench_core::plan::Mode;
use wsbench_core::warning::WarningKind;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn closed_loop_counts_add_up_and_files_parse() {
    let _turn = serial();
    let server = EchoServer::start(None);
    let dir = out_dir("closed");
    let url = server.url();
    let (status, _, stderr) = run_loadgen(
        &["--url", &url, "--connections", "4", "--in-flight", "2", "--threads", "2", "--duration", "2s", "--warmup", "500ms", "--out", dir.to_str().unwrap()],
        LIMIT,
    );
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    let s = &r.summary;
    assert!(s.complete);
    assert!(s.messages.sent > 0);
    assert_eq!(s.messages.received, s.messages.sent, "{:?}", s.messages);
    assert_eq!((s.messages.errors, s.messages.corrupted, s.messages.lost), (0, 0, 0));
    assert_eq!((s.connections.target, s.connections.established, s.connections.failed), (4, 4, 0));
    assert!(s.throughput_msgs_per_s > 0.0);
    assert!((s.duration_s - 2.0).abs() < 0.01, "duration {}", s.duration_s);
    assert_eq!(s.latency_us.count, s.messages.received);
    // Closed loop: intended time is the send time, so latency is service time and lag is zero.
    assert_eq!(s.latency_us, s.service_time_us);
    assert_eq!(s.send_lag_us.max, 0.0);
    assert!(s.rate.is_none());
    assert_eq!(s.config.in_flight, 2);
    assert!(s.command.iter().any(|a| a == "--in-flight"));
    assert!(s.cpu.process_pct > 0.0 && s.cpu.busiest_thread_pct > 0.0, "{:?}", s.cpu);
    assert!(s.started_at.ends_with('Z'));
    assert!(!s.warnings.iter().any(|w| w.kind != WarningKind::LoadgenSaturated && w.kind != WarningKind::TooFewSamples), "{:?}", s.warnings);
    assert!((2..=3).contains(&r.rows.len()), "{} rows for 2 s", r.rows.len());
    assert!((r.rows.last().unwrap().elapsed_s - 2.0).abs() < 0.01);
    eprintln!(
        "closed loop, 4 connections x 2 in flight: {:.0} msgs/s, latency p50 {} us p99 {} us",
        s.throughput_msgs_per_s, s.latency_us.p50, s.latency_us.p99
    );
}

#[test]
fn text_mode_sends_text_frames_that_check_out() {
    let _turn = serial();
    let server = EchoServer::start(None);
    let dir = out_dir("text");
    let url = server.url();
    let (status, _, stderr) =
        run_loadgen(&["--url", &url, "--connections", "2", "--text", "--size", "1KiB", "--duration", "1s", "--warmup", "0s", "--out", dir.to_str().unwrap()], LIMIT);
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    let s = &r.summary;
    assert_eq!(s.config.mode, Mode::Text);
    assert_eq!(s.config.size, 1024);
    assert!(s.messages.received > 0);
    assert_eq!(s.messages.received, s.messages.sent);
    assert_eq!((s.messages.corrupted, s.messages.lost, s.messages.errors), (0, 0, 0));
}

#[test]
fn open_loop_sends_rate_times_duration() {
    let _turn = serial();
    let server = EchoServer::start(None);
    let dir = out_dir("open");
    let url = server.url();
    let (status, _, stderr) = run_loadgen(
        &["--url", &url, "--connections", "10", "--rate", "2000", "--duration", "2s", "--warmup", "500ms", "--out", dir.to_str().unwrap()],
        LIMIT,
    );
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    let s = &r.summary;
    // The schedule decides what is sent: exact up to one message per connection, unless the
    // load generator is descheduled right at the window's end (what is not sent by then is not
    // sent at all), hence 2 %.
    assert!(s.messages.sent.abs_diff(4_000) <= 80, "sent {}", s.messages.sent);
    assert_eq!(s.messages.received, s.messages.sent);
    assert_eq!((s.messages.corrupted, s.messages.lost, s.messages.errors), (0, 0, 0));
    let rate = s.rate.expect("open loop reports its rate");
    assert_eq!(rate.asked_msgs_per_s, 2_000.0);
    assert!((rate.sent_msgs_per_s - 2_000.0).abs() <= 40.0, "{rate:?}");
    assert_eq!(s.send_lag_us.count, s.messages.sent);
    // Latency is measured from the intended time, which is never after the actual send.
    assert!(s.latency_us.p50 >= s.service_time_us.p50 * 0.999);
    assert!(s.latency_us.max >= s.service_time_us.max * 0.999);
    // Each second sends its share; a message late across a boundary counts in the next one.
    assert_eq!(r.rows.len(), 2, "{:?}", r.rows);
    assert!(r.rows.iter().all(|row| row.sent.abs_diff(2_000) <= 100), "{:?}", r.rows);
    eprintln!(
        "open loop 2000/s: latency p50 {} us p99 {} us; send lag p50 {} us p99 {} us max {} us",
        s.latency_us.p50, s.latency_us.p99, s.send_lag_us.p50, s.send_lag_us.p99, s.send_lag_us.max
    );
}

/// `--coalesce 10ms`: one firing serves every send due in 10 ms, so sends leave late by design,
/// and the lag is measured and charged to latency, never hidden; every message due in the
/// window still leaves, the last ones after a firing that comes after the window's end.
#[test]
fn coalesced_sends_are_late_by_design_and_none_is_left_out() {
    let _turn = serial();
    let server = EchoServer::start(None);
    let dir = out_dir("open-coalesced");
    let url = server.url();
    let (status, _, stderr) = run_loadgen(
        &["--url", &url, "--connections", "10", "--rate", "10000", "--duration", "2s", "--warmup", "500ms", "--coalesce", "10ms", "--out", dir.to_str().unwrap()],
        LIMIT,
    );
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    let s = &r.summary;
    assert_eq!(s.config.coalesce, wsbench_core::plan::Coalesce::Every(Duration::from_millis(10)));
    assert!(s.command.iter().any(|a| a == "--coalesce"));
    // Firings at least 10 ms apart: a send waits for the next one, half the period on average.
    // (Load can only make it later.) Precise pacing here is tens of microseconds.
    assert!(s.send_lag_us.p50 >= 2_000.0, "send lag p50 {} us", s.send_lag_us.p50);
    assert!(s.latency_us.p50 >= s.service_time_us.p50 + 2_000.0, "latency {:?} service {:?}", s.latency_us, s.service_time_us);
    // Up to one period's messages (100) are due after the last firing in the window: they
    // leave too, so the schedule is kept up to one message per connection.
    assert!(s.messages.sent.abs_diff(20_000) <= 10, "sent {}", s.messages.sent);
    assert_eq!(s.messages.received, s.messages.sent);
    assert_eq!((s.messages.corrupted, s.messages.lost, s.messages.errors), (0, 0, 0));
    // Lag of up to the period was asked for: only lag past it (and the usual 1 ms) warns.
    for w in s.warnings.iter().filter(|w| w.kind == WarningKind::SendLagHigh) {
        assert!(s.send_lag_us.p99 > 11_000.0 && w.message.contains("--coalesce 10ms"), "{w:?}");
    }
}

/// A server slower than the asked rate: 10 connections, each echo held 10 ms, one at a time per
/// connection, so at most ~1,000 answers per second against 2,000 asked. The backlog is answered
/// during the drain after the window; those echoes arrive but are late, and the throughput counts
/// only what came back while the window was open, so the run says plainly that the server was
/// overloaded instead of reporting the asked rate.
#[test]
fn an_overloaded_server_is_reported_as_such_though_the_drain_catches_up() {
    let _turn = serial();
    let server = EchoServer::start_slow(Duration::from_millis(10));
    let dir = out_dir("overloaded");
    let url = server.url();
    let (status, _, stderr) = run_loadgen(
        &["--url", &url, "--connections", "10", "--rate", "2000", "--duration", "2s", "--warmup", "0s", "--drain-timeout", "10s", "--out", dir.to_str().unwrap()],
        LIMIT,
    );
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    let r = read_results(&dir);
    r.assert_consistent();
    let s = &r.summary;
    let m = s.messages;
    eprintln!("overloaded server: {m:?}, throughput {:.0} msgs/s, latency p99 {} us", s.throughput_msgs_per_s, s.latency_us.p99);
    assert_eq!((m.received, m.lost, m.errors), (m.sent, 0, 0), "the drain collects every echo: {m:?}");
    // Half the messages were answered in the window, half during the drain (the server's
    // capacity is a ceiling: timer slack only makes it slower).
    assert!(s.throughput_msgs_per_s < 0.6 * 2_000.0, "throughput {} msgs/s counts late echoes", s.throughput_msgs_per_s);
    assert!(m.late as f64 > 0.35 * m.sent as f64, "late {} of {}", m.late, m.sent);
    assert_eq!(s.throughput_msgs_per_s, m.received_in_window() as f64 / s.duration_s);
    let warning = s.warnings.iter().find(|w| w.kind == WarningKind::RateNotReached).expect("rate not reached");
    assert!(warning.message.contains("overloaded") && warning.message.contains("late"), "{}", warning.message);
}

/// The server stops for 200 ms every 500 ms. Open loop keeps sending through the stall, so 40 %
/// of the messages wait for the stall's end, uniformly 0–200 ms: latency p99 is ~195 ms (the top
/// 2.5 % of the stalled messages). Messages go out on time, so service time rises the same way
/// (it too includes the wait); latency from the intended time is never below it. A closed loop
/// against the same server hides the stall: only the few messages in flight when it begins wait,
/// so its p99 stays far lower (coordinated omission), which is why open loop exists.
#[test]
fn a_stalling_server_shows_in_open_loop_latency() {
    let _turn = serial();
    let stall = Stall { every: Duration::from_millis(500), pause: Duration::from_millis(200) };
    let server = EchoServer::start(Some(stall));
    let url = server.url();

    let dir = out_dir("stall-open");
    let (status, _, stderr) = run_loadgen(
        &["--url", &url, "--connections", "10", "--rate", "2000", "--duration", "3s", "--warmup", "500ms", "--out", dir.to_str().unwrap()],
        LIMIT,
    );
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    let open = read_results(&dir);
    open.assert_consistent();
    let (lat, svc) = (open.summary.latency_us, open.summary.service_time_us);
    eprintln!("stalled server, open loop: latency p50 {} p99 {} max {} us; service p50 {} p99 {} us", lat.p50, lat.p99, lat.max, svc.p50, svc.p99);
    assert!((120_000.0..=300_000.0).contains(&lat.p99), "latency p99 {} us, expected ~195 ms", lat.p99);
    assert!(lat.max <= 400_000.0, "no message waits much longer than one stall: max {} us", lat.max);
    assert!(svc.p99 > 100_000.0, "service time includes the stall too: p99 {} us", svc.p99);
    for (l, s) in [(lat.p50, svc.p50), (lat.p90, svc.p90), (lat.p99, svc.p99), (lat.max, svc.max)] {
        assert!(l >= s * 0.999, "latency {l} us below service time {s} us");
    }
    assert_eq!(open.summary.messages.received, open.summary.messages.sent);

    let dir = out_dir("stall-closed");
    let (status, _, stderr) =
        run_loadgen(&["--url", &url, "--connections", "10", "--duration", "3s", "--warmup", "500ms", "--out", dir.to_str().unwrap()], LIMIT);
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    let closed = read_results(&dir).summary;
    eprintln!("stalled server, closed loop: latency p50 {} p99 {} max {} us", closed.latency_us.p50, closed.latency_us.p99, closed.latency_us.max);
    assert!(closed.latency_us.max >= 100_000.0, "the closed loop saw the stall too (max {} us)", closed.latency_us.max);
    assert!(closed.latency_us.p99 < lat.p99 / 4.0, "closed-loop p99 {} us hides the stall that open loop shows ({} us)", closed.latency_us.p99, lat.p99);
}

/// 200 connections at 10 msgs/s in total for 3 s: most connections have no message in the
/// window at all, yet every one is load the server holds. The server sees all 200 open until
/// the window's end, every interval says so, and the summary says all were held.
#[test]
fn every_connection_is_held_for_the_whole_window_at_a_low_rate() {
    let _turn = serial();
    for engine in ["zero-alloc", "tungstenite"] {
        let server = EchoServer::start(None);
        let dir = out_dir(&format!("held-{engine}"));
        let url = server.url();
        let child = spawn_loadgen(&[
            "--url", &url, "--engine", engine, "--connections", "200", "--connect-rate", "2000", "--rate", "10", "--duration", "3s", "--warmup", "500ms",
            "--out", dir.to_str().unwrap(),
        ]);
        // Sample what the server holds while the run goes: from the moment all 200 are open
        // until the load generator ends, the server must never see fewer before the last row.
        let deadline = std::time::Instant::now() + LIMIT;
        let mut seen_all = false;
        let mut fewest_after = usize::MAX;
        let csv = dir.join("intervals.csv");
        loop {
            let open = server.open_connections();
            let rows = std::fs::read_to_string(&csv).map(|t| t.lines().count().saturating_sub(1)).unwrap_or(0);
            if open == 200 {
                seen_all = true;
            }
            // Until the second interval is written, the window is certainly not over.
            if seen_all && rows < 2 {
                fewest_after = fewest_after.min(open);
            }
            if rows >= 2 || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (status, _, stderr) = wait(child, LIMIT);
        assert!(status.success(), "{engine}: exit {status}; stderr:\n{stderr}");
        assert!(seen_all, "{engine}: the server never held all 200");
        assert_eq!(fewest_after, 200, "{engine}: connections closed mid-window");
        let r = read_results(&dir);
        r.assert_consistent();
        let s = &r.summary;
        assert_eq!((s.connections.established, s.connections.held), (200, Some(200)), "{engine}: {:?}", s.connections);
        assert!(s.messages.sent.abs_diff(30) <= 2, "{engine}: sent {}", s.messages.sent);
        assert_eq!(r.rows.len(), 3, "{engine}: {:?}", r.rows);
        assert!(r.rows.iter().all(|row| (row.open_min, row.open_max) == (200, 200)), "{engine}: {:?}", r.rows);
        assert!(!s.warnings.iter().any(|w| w.kind == WarningKind::ConnectionsNotHeld), "{engine}: {:?}", s.warnings);
        assert_eq!(server.open_connections(), 0, "{engine}: closed after the run");
    }
}

/// A server that closes every connection mid-window: the intervals show the connections going,
/// and the summary warns that fewer than planned were held.
#[test]
fn connections_lost_mid_window_show_in_intervals_and_warn() {
    let _turn = serial();
    let server = EchoServer::start(None);
    let dir = out_dir("not-held");
    let url = server.url();
    let child = spawn_loadgen(&["--url", &url, "--connections", "20", "--rate", "200", "--duration", "3s", "--warmup", "0s", "--out", dir.to_str().unwrap()]);
    let csv = dir.join("intervals.csv");
    let deadline = std::time::Instant::now() + LIMIT;
    while std::fs::read_to_string(&csv).map(|t| t.lines().count()).unwrap_or(0) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.go_away();
    let (_status, _, stderr) = wait(child, LIMIT);
    let r = read_results(&dir);
    let s = &r.summary;
    assert_eq!((r.rows[0].open_min, r.rows[0].open_max), (20, 20), "{:?}", r.rows);
    // The drops race the stop they cause, so the last one or two may count as after the window.
    assert!(r.rows.iter().any(|row| row.open_min <= 2), "{:?}; stderr:\n{stderr}", r.rows);
    assert!(s.connections.held.is_some_and(|h| h <= 2), "{:?}", s.connections);
    assert!(s.warnings.iter().any(|w| w.kind == WarningKind::ConnectionsNotHeld), "{:?}", s.warnings);
}
