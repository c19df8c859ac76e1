//! Lossless merging of several load-generator processes of one trial.
//!
//! When a trial's load is split over several processes, each writes its own `summary.json`,
//! interval logs and `intervals.csv`. Merging adds histograms interval by interval and sums
//! counts; every percentile of the result is recomputed from the merged histograms. Percentiles
//! are never averaged: the p99 of two processes is not the mean of their p99s.
//!
//! Only processes that measured the same thing add up: [`check_compatible`] refuses shards whose
//! message size, mode, client engine, server workload, server or rate plan differ (the sum of a
//! 1 KiB text run and a 32 B binary run describes neither), unless the caller forces the merge,
//! in which case the merged `summary.json` names every differing value in `config.differing`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use wsbench_core::hist::{self, LatencySummary, LogInterval};
use wsbench_core::layout;
use wsbench_core::result::{CpuUse, IntervalRow, LoadgenSummary, RateReport, ServerSummary};
use wsbench_core::SCHEMA_VERSION;

use crate::error::AnalysisError;
use crate::load;

/// Everything one load-generator process writes, in memory.
#[derive(Debug, Clone)]
pub struct LoadgenFiles {
    pub summary: LoadgenSummary,
    pub latency: Vec<LogInterval>,
    pub service_time: Vec<LogInterval>,
    pub send_lag: Vec<LogInterval>,
    pub intervals: Vec<IntervalRow>,
    /// Broadcast completion (`completion.hlog`); empty for other workloads.
    pub completion: Vec<LogInterval>,
    /// Connection setup logs, in [`SETUP_LOGS`] order; empty where a process wrote none
    /// (results from before they existed, or no TLS for `tls.hlog`).
    pub setup: [Vec<LogInterval>; 4],
}

/// The per-connection setup logs: TCP connect, TLS handshake, WebSocket handshake, first message.
pub const SETUP_LOGS: [&str; 4] = [layout::CONNECT_LOG, layout::TLS_LOG, layout::HANDSHAKE_LOG, layout::FIRST_MESSAGE_LOG];

/// Merges the outputs of several load-generator processes of one trial and writes the merged
/// `summary.json`, `latency.hlog`, `service_time.hlog`, `send_lag.hlog` and `intervals.csv`
/// into `out` (created if needed). Returns the merged summary.
///
/// Shards that did not measure the same thing are refused ([`AnalysisError::Mismatch`]) unless
/// `force` is set; a forced merge records every differing value in the summary's
/// `config.differing`.
pub fn merge_loadgen(shards: &[PathBuf], out: &Path, force: bool) -> Result<LoadgenSummary, AnalysisError> {
    let files = read_shards(shards)?;
    check_shard_set(&shards.iter().zip(&files).map(|(d, (f, _))| ShardEntry::of(d, &f.summary)).collect::<Vec<_>>(), &[])?;
    let differing = differences(shards, &files);
    if !differing.is_empty() && !force {
        return Err(AnalysisError::Mismatch { differing: describe_differences(&differing) });
    }
    let mut merged = combine(files.into_iter().map(|(f, _)| f).collect());
    merged.summary.config.out = Some(out.to_owned());
    write(&merged, out, shards.len(), &differing)?;
    Ok(merged.summary)
}

/// Reads and merges shards without writing anything; refuses shards that do not belong
/// together.
pub fn merge_shards(shards: &[PathBuf]) -> Result<LoadgenFiles, AnalysisError> {
    let files = read_shards(shards)?;
    check_compatible(shards, &files)?;
    Ok(combine(files.into_iter().map(|(f, _)| f).collect()))
}

/// One directory of results, as [`check_shard_set`] sees it.
#[derive(Debug, Clone)]
pub struct ShardEntry {
    pub dir: PathBuf,
    pub shard: Option<wsbench_core::result::ShardReport>,
    pub start: Option<wsbench_core::result::StartReport>,
}

impl ShardEntry {
    pub fn of(dir: &Path, summary: &LoadgenSummary) -> Self {
        Self { dir: dir.to_owned(), shard: summary.shard.clone(), start: summary.start.clone() }
    }
}

/// A shard known to exist (its `shard-<i>/` folder is there) without results yet.
#[derive(Debug, Clone)]
pub struct AbsentShard {
    pub index: u32,
    pub why: String,
}

/// Refuses an incomplete or inconsistent set of shards (`wsbench loadgen --shard i/n`): every
/// index from 0 to n - 1 exactly once, all with the same n, whole-load totals and start.
/// `present` holds each directory read with its shard report and start; `absent` names
/// directories of shards known to exist but without results, each with why. Results of
/// processes that were not shards pass, unless mixed with shards.
pub fn check_shard_set(present: &[ShardEntry], absent: &[AbsentShard]) -> Result<(), AnalysisError> {
    let present: Vec<_> = present.iter().map(|e| (&e.dir, &e.shard, &e.start)).collect();
    let absent: Vec<_> = absent.iter().map(|a| (a.index, &a.why)).collect();
    let sharded: Vec<_> = present.iter().filter_map(|(d, s, st)| s.as_ref().map(|s| (*d, s, *st))).collect();
    if sharded.is_empty() && absent.is_empty() {
        return Ok(());
    }
    let mut conflicts = Vec::new();
    for (d, _, _) in present.iter().filter(|(_, s, _)| s.is_none()) {
        conflicts.push(format!("{} is a whole load, not a shard (no `shard` in its summary.json)", d.display()));
    }
    let Some((_, first, first_start)) = sharded.first() else {
        return Err(AnalysisError::MissingShards { count: 0, missing: absent.iter().map(|(i, why)| format!("shard {i} ({why})")).collect() });
    };
    let whole = |s: &wsbench_core::result::ShardReport| format!("{} shards of {} connections at {}", s.count, s.total_connections, s.total_rate.map_or("closed loop".into(), |r| format!("{r} msgs/s")));
    let start_of = |st: &Option<wsbench_core::result::StartReport>| st.as_ref().map_or("no --start-at".to_owned(), |st| format!("--start-at {}", st.at));
    let mut seen: BTreeMap<u32, &PathBuf> = BTreeMap::new();
    for (d, s, st) in &sharded {
        if (s.count, s.total_connections, s.total_rate) != (first.count, first.total_connections, first.total_rate) {
            conflicts.push(format!("{} is shard {}/{} of {}, but {} is of {}", d.display(), s.index, s.count, whole(s), sharded[0].0.display(), whole(first)));
        } else if start_of(st) != start_of(first_start) {
            conflicts.push(format!("{} began at {}, but {} at {}", d.display(), start_of(st), sharded[0].0.display(), start_of(first_start)));
        }
        if let Some(other) = seen.insert(s.index, d) {
            conflicts.push(format!("shard {} twice: {} and {}", s.index, other.display(), d.display()));
        }
    }
    if !conflicts.is_empty() {
        return Err(AnalysisError::ShardConflict { detail: conflicts });
    }
    let missing: Vec<String> = (0..first.count)
        .filter(|i| !seen.contains_key(i))
        .map(|i| match absent.iter().find(|(a, _)| *a == i) {
            Some((_, why)) => format!("shard {i}/{} ({why})", first.count),
            None => format!("shard {i}/{} (not among the directories given)", first.count),
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(AnalysisError::MissingShards { count: first.count, missing })
    }
}

/// Every shard's files, with the `server.json` beside them when there is one.
fn read_shards(shards: &[PathBuf]) -> Result<Vec<(LoadgenFiles, Option<ServerSummary>)>, AnalysisError> {
    if shards.is_empty() {
        return Err(AnalysisError::NoShards);
    }
    shards
        .iter()
        .map(|d| {
            let server = d.join(layout::SERVER_SUMMARY);
            let server = if server.is_file() { Some(load::read_json(&server, "server summary")?) } else { None };
            Ok((read_shard(d)?, server))
        })
        .collect()
}

/// Refuses shards that measured different things: [`AnalysisError::Mismatch`] names each key
/// that differs and its value in every shard.
pub fn check_compatible(shards: &[PathBuf], files: &[(LoadgenFiles, Option<ServerSummary>)]) -> Result<(), AnalysisError> {
    let differing = differences(shards, files);
    if differing.is_empty() {
        Ok(())
    } else {
        Err(AnalysisError::Mismatch { differing: describe_differences(&differing) })
    }
}

/// What a shard measured, key by key: the keys that must agree for shards to add up.
///
/// The server is the built-in server's plan when its `server.json` lies beside the summary
/// (the port is left out: every run picks a free one), else the URL the load generator used
/// (the processes of one trial share it). The rate plan is per connection, since a trial splits
/// its rate over its processes in proportion to their connections.
pub fn identity(summary: &LoadgenSummary, server: Option<&ServerSummary>) -> Vec<(&'static str, String)> {
    let p = &summary.config;
    let rate_plan = match p.rate {
        Some(r) if p.connections > 0 => format!("open loop, {} msgs/s per connection", crate::format::sig3(r / f64::from(p.connections))),
        Some(r) => format!("open loop, {r} msgs/s"),
        None => format!("closed loop, {} in flight per connection", p.in_flight),
    };
    let (workload, server) = match server {
        Some(s) => {
            let c = &s.config;
            let mut d = format!("built-in {} ({} handler), {}", c.engine.name(), c.handler.name(), c.runtime.name());
            if c.runtime == wsbench_core::plan::Runtime::MultiThread {
                d += &format!(" x{}", c.workers);
            }
            if let Some(pause) = c.pause {
                d += &format!(", pauses {:?} every {:?}", pause.pause_for, pause.every);
            }
            (c.workload.name().to_owned(), d)
        }
        None => ("unknown (no server.json)".to_owned(), p.url.clone()),
    };
    vec![
        ("size", p.size.to_string()),
        ("mode", p.mode.name().to_owned()),
        ("engine", p.engine.name().to_owned()),
        ("workload", workload),
        ("server", server),
        ("rate plan", rate_plan),
        ("window", format!("{:?} after {:?} warm-up", p.duration, p.warmup)),
        ("interval", format!("{:?}", p.interval)),
    ]
}

/// The keys whose values are not the same in every shard, each with every shard's value
/// (labelled by its directory), in the order of [`identity`].
fn differences(shards: &[PathBuf], files: &[(LoadgenFiles, Option<ServerSummary>)]) -> Vec<(&'static str, Vec<(String, String)>)> {
    let ids: Vec<_> = files.iter().map(|(f, s)| identity(&f.summary, s.as_ref())).collect();
    let Some(first) = ids.first() else { return Vec::new() };
    (0..first.len())
        .filter(|&k| ids.iter().any(|id| id[k].1 != first[k].1))
        .map(|k| (first[k].0, shards.iter().zip(&ids).map(|(d, id)| (d.display().to_string(), id[k].1.clone())).collect()))
        .collect()
}

/// `size: 1024 (a/trial-1), 32 (b/trial-1)` per differing key.
fn describe_differences(differing: &[(&'static str, Vec<(String, String)>)]) -> Vec<String> {
    differing
        .iter()
        .map(|(key, values)| format!("{key}: {}", values.iter().map(|(dir, v)| format!("{v} ({dir})")).collect::<Vec<_>>().join(", ")))
        .collect()
}

/// Reads one process's files; all of them must be there, since a merge missing one process's
/// histograms would silently under-report.
pub fn read_shard(dir: &Path) -> Result<LoadgenFiles, AnalysisError> {
    let need = |name: &str| {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(AnalysisError::MissingShardFile { path: p })
        }
    };
    let summary = load::read_summary(&need(layout::SUMMARY)?)?;
    // The one-way workloads write no intervals.csv; a broadcast writes its completion log.
    let fanout = summary.fanout.is_some();
    let broadcast = summary.fanout.as_ref().is_some_and(|f| f.completion_us.is_some());
    Ok(LoadgenFiles {
        latency: load::read_log(&need(layout::LATENCY_LOG)?)?,
        service_time: load::read_log(&need(layout::SERVICE_TIME_LOG)?)?,
        send_lag: load::read_log(&need(layout::SEND_LAG_LOG)?)?,
        intervals: if fanout && !dir.join(layout::INTERVALS_CSV).is_file() { Vec::new() } else { load::read_csv(&need(layout::INTERVALS_CSV)?, "intervals.csv")? },
        completion: if broadcast { load::read_log(&need(layout::COMPLETION_LOG)?)? } else { Vec::new() },
        summary,
        setup: {
            let mut logs: [Vec<LogInterval>; 4] = Default::default();
            for (log, name) in logs.iter_mut().zip(SETUP_LOGS) {
                let p = dir.join(name);
                if p.is_file() {
                    *log = load::read_log(&p)?;
                }
            }
            logs
        },
    })
}

/// Adds the k-th histogram of every log into the k-th histogram of the result.
///
/// Logs of different lengths are fine: the result is as long as the longest, and each interval
/// keeps the earliest start and the longest duration seen at its index (processes start at a
/// shared time, so these agree up to scheduling jitter).
pub fn add_by_index<'a>(logs: impl IntoIterator<Item = &'a [LogInterval]>) -> Vec<LogInterval> {
    let mut out: Vec<LogInterval> = Vec::new();
    for log in logs {
        for (k, iv) in log.iter().enumerate() {
            match out.get_mut(k) {
                Some(m) => {
                    m.histogram.add(&iv.histogram).expect("read_interval_log widens every histogram to the same bounds");
                    m.start = m.start.min(iv.start);
                    m.duration = m.duration.max(iv.duration);
                }
                None => out.push(LogInterval { tag: None, ..iv.clone() }),
            }
        }
    }
    out
}

/// Merges processes in memory. Counts add, histograms add by interval, percentiles are
/// recomputed from the merged histograms. Field by field: message and connection counts add;
/// `duration_s` is the longest; throughput is all echoes received within the window over that duration; `complete` only if
/// every process completed (the reasons are joined); warnings are the union without repeats;
/// process CPU adds up while the busiest thread is the busiest of any; asked and sent rates add;
/// `started_at` is the earliest; `config` is the first process's plan with connections and rate
/// summed to describe the whole load; command and host are the first process's.
pub fn combine(shards: Vec<LoadgenFiles>) -> LoadgenFiles {
    assert!(!shards.is_empty(), "combine needs at least one shard");
    let latency = add_by_index(shards.iter().map(|s| s.latency.as_slice()));
    let service_time = add_by_index(shards.iter().map(|s| s.service_time.as_slice()));
    let send_lag = add_by_index(shards.iter().map(|s| s.send_lag.as_slice()));
    let intervals = combine_rows(shards.iter().map(|s| s.intervals.as_slice()), &latency);

    let first = &shards[0].summary;
    let mut summary = first.clone();
    summary.schema_version = SCHEMA_VERSION;
    summary.messages = Default::default();
    summary.connections = Default::default();
    summary.cpu = CpuUse::default();
    summary.warnings = Vec::new();
    summary.unanswered_min_age_us = None;
    let mut failed_checks = Vec::new();
    let mut reasons = Vec::new();
    let mut rate: Option<RateReport> = None;
    let mut plan_rate: Option<f64> = None;
    let mut plan_connections = 0;
    // A ramp's stages, and a connection ramp's count at the start, add up like the rate and
    // connections (each process or shard holds its part of every stage).
    let mut stages = first.config.stages.clone();
    let mut start_connections = first.config.start_connections.map(|_| 0);
    for (i, s) in shards.iter().map(|s| &s.summary).enumerate() {
        if i > 0 && s.config.stages.len() == stages.len() {
            for (m, st) in stages.iter_mut().zip(&s.config.stages) {
                m.rate += st.rate;
                m.connections = m.connections.zip(st.connections).map(|(a, b)| a + b);
            }
        }
        start_connections = start_connections.map(|n| n + s.config.first_connections());
        summary.messages += s.messages;
        summary.connections += &s.connections;
        summary.unanswered_min_age_us = match (summary.unanswered_min_age_us, s.unanswered_min_age_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let who = s.shard.as_ref().map_or(format!("loadgen-{i}"), |sh| format!("shard-{}", sh.index));
        for c in &s.failed_checks {
            failed_checks.push(format!("{who}: {c}"));
        }
        // Shards began together or not: the merged start is late if any shard was.
        if let (Some(m), Some(st)) = (summary.start.as_mut(), s.start.as_ref()) {
            m.late |= st.late;
            m.late_by_s = m.late_by_s.max(st.late_by_s);
        }
        // Processes run side by side: their CPU adds up; the busiest thread is the busiest of any.
        summary.cpu.process_pct += s.cpu.process_pct;
        summary.cpu.busiest_thread_pct = summary.cpu.busiest_thread_pct.max(s.cpu.busiest_thread_pct);
        summary.duration_s = summary.duration_s.max(s.duration_s);
        if s.started_at < summary.started_at {
            summary.started_at = s.started_at.clone(); // RFC 3339 UTC stamps sort as text
        }
        if !s.complete {
            reasons.push(format!("{who}: {}", s.reason.as_deref().unwrap_or("incomplete")));
        }
        if let Some(r) = s.rate {
            let m = rate.get_or_insert_with(RateReport::default);
            m.asked_msgs_per_s += r.asked_msgs_per_s;
            m.sent_msgs_per_s += r.sent_msgs_per_s;
        }
        for w in &s.warnings {
            if !summary.warnings.contains(w) {
                summary.warnings.push(w.clone());
            }
        }
        // The merged plan describes the whole load: connections and rate over all processes.
        plan_connections += s.config.connections;
        if let Some(r) = s.config.rate {
            plan_rate = Some(plan_rate.unwrap_or(0.0) + r);
        }
    }
    // The merged result is the whole load, no longer one shard of it.
    summary.shard = None;
    summary.failed_checks = failed_checks;
    summary.complete = reasons.is_empty();
    summary.reason = (!reasons.is_empty()).then(|| reasons.join("; "));
    summary.rate = rate;
    summary.config.connections = plan_connections;
    summary.config.rate = plan_rate;
    summary.config.stages = stages;
    summary.config.start_connections = start_connections;
    // A sink's throughput is what it sent: nothing comes back.
    let counted = if summary.config.workload == wsbench_core::plan::Workload::Sink { summary.messages.sent } else { summary.messages.received_in_window() };
    summary.throughput_msgs_per_s = if summary.duration_s > 0.0 { counted as f64 / summary.duration_s } else { 0.0 };
    summary.latency_us = LatencySummary::from_histogram_ns(&hist::total(&latency));
    summary.service_time_us = LatencySummary::from_histogram_ns(&hist::total(&service_time));
    summary.send_lag_us = LatencySummary::from_histogram_ns(&hist::total(&send_lag));

    // Setup times: one sample per connection, so the processes' histograms add.
    let setup: [Vec<LogInterval>; 4] = [0, 1, 2, 3].map(|i| add_by_index(shards.iter().map(|s| s.setup[i].as_slice())));
    let step = |i: usize| {
        let h = hist::total(&setup[i]);
        (!h.is_empty()).then(|| LatencySummary::from_histogram_ns(&h))
    };
    summary.setup.connect_us = step(0);
    summary.setup.tls_us = step(1);
    summary.setup.handshake_us = step(2);
    summary.setup.first_message_us = step(3);
    // Kernel receive stamps: every shard's counts (the first shard's alone would under-count).
    summary.rx_timestamps = shards.iter().filter_map(|s| s.summary.rx_timestamps.as_ref()).fold(None, |all, r| {
        let mut all = all.unwrap_or_default();
        all.add(r);
        Some(all)
    });
    summary.setup.subprotocols = BTreeMap::new();
    for s in &shards {
        for (p, n) in &s.summary.setup.subprotocols {
            *summary.setup.subprotocols.entry(p.clone()).or_default() += n;
        }
    }

    let completion = add_by_index(shards.iter().map(|s| s.completion.as_slice()));
    if let Some(f) = combine_fanout(&shards, &completion) {
        summary.messages.lost = f.expected_deliveries.saturating_sub(f.delivered);
        if let Some(check) = whole_room_check(&shards, &f) {
            summary.failed_checks.push(check);
        }
        summary.fanout = Some(f);
    }

    LoadgenFiles { summary, latency, service_time, send_lag, intervals, completion, setup }
}

/// The cause a shard gives a delivery that simply did not come; see [`combine_fanout`].
const NOT_DELIVERED: &str = "not delivered by the end of the drain";

/// The one-way workloads' figures of the processes added up. Counts add; reach is recomputed.
///
/// Broadcast shards: the whole load's expected deliveries are the sum of what each shard's
/// publishers sent times their rooms' receivers (`expected_by_publishers`), which is exact.
/// A shard counted other shards' publishers as scheduled; when one of them sent less, the
/// shards' missing deliveries exceed the whole's by that much, and the excess (deliveries
/// never asked for) is taken off the causes, `not delivered by the end of the drain` first.
/// Completion stays per shard (`completion_within_shard`): each shard's histogram holds the
/// time until its last member had each broadcast, and their sum is that, not the room's.
fn combine_fanout(shards: &[LoadgenFiles], completion: &[LogInterval]) -> Option<wsbench_core::result::FanoutReport> {
    let reports: Vec<_> = shards.iter().filter_map(|s| s.summary.fanout.as_ref()).collect();
    let first = *reports.first()?;
    let mut m = wsbench_core::result::FanoutReport { room_size_min: first.room_size_min, room_size_max: first.room_size_max, ..Default::default() };
    let mut by_publishers = Some(0u64);
    for f in &reports {
        m.published += f.published;
        m.expected_deliveries += f.expected_deliveries;
        m.delivered += f.delivered;
        m.deliveries_per_s += f.deliveries_per_s;
        m.completed += f.completed;
        m.incomplete += f.incomplete;
        m.gaps += f.gaps;
        m.untracked += f.untracked;
        m.completion_within_shard |= f.completion_within_shard;
        for (cause, n) in &f.missing {
            *m.missing.entry(cause.clone()).or_default() += n;
        }
        by_publishers = by_publishers.zip(f.expected_by_publishers).map(|(a, b)| a + b);
    }
    if let Some(exact) = by_publishers {
        m.expected_deliveries = exact;
    }
    let mut excess = m.missing.values().sum::<u64>().saturating_sub(m.expected_deliveries.saturating_sub(m.delivered));
    let mut causes: Vec<String> = m.missing.keys().cloned().collect();
    causes.sort_by_key(|c| c != NOT_DELIVERED);
    for cause in causes {
        let n = m.missing.get_mut(&cause).expect("listed from the map");
        let cut = excess.min(*n);
        *n -= cut;
        excess -= cut;
        if *n == 0 {
            m.missing.remove(&cause);
        }
    }
    m.reach = if m.expected_deliveries == 0 { 1.0 } else { m.delivered as f64 / m.expected_deliveries as f64 };
    if first.completion_us.is_some() {
        m.completion_us = Some(LatencySummary::from_histogram_ns(&hist::total(completion)));
    }
    Some(m)
}

/// The merged load's own judgement of missing deliveries beyond what `--max-loss` allows:
/// each shard judged only its own members.
fn whole_room_check(shards: &[LoadgenFiles], f: &wsbench_core::result::FanoutReport) -> Option<String> {
    let max_loss = shards.first()?.summary.config.max_loss;
    let lost = f.expected_deliveries.saturating_sub(f.delivered);
    if f.expected_deliveries == 0 || lost as f64 <= max_loss * f.expected_deliveries as f64 {
        return None;
    }
    let causes: Vec<String> = f.missing.iter().map(|(c, n)| format!("{n} {c}")).collect();
    Some(format!("whole load: {lost} of {} deliveries missing ({}), more than --max-loss allows", f.expected_deliveries, causes.join(", ")))
}

/// Sums `intervals.csv` rows by index; throughput and percentiles are recomputed (percentiles
/// from the merged latency histogram of the same index).
fn combine_rows<'a>(shards: impl IntoIterator<Item = &'a [IntervalRow]>, latency: &[LogInterval]) -> Vec<IntervalRow> {
    let mut rows: Vec<IntervalRow> = Vec::new();
    // Where no histogram backs a row, the largest of the processes' percentiles is the honest
    // bound we have (it can only overstate); rows and log intervals normally match one to one.
    let mut fallback: Vec<[Option<f64>; 5]> = Vec::new();
    for shard in shards {
        for (k, r) in shard.iter().enumerate() {
            if k == rows.len() {
                // Processes share the timeline, so a ramp's stage is the same in each.
                rows.push(IntervalRow { elapsed_s: r.elapsed_s, stage: r.stage, ..Default::default() });
                fallback.push([None; 5]);
            }
            let m = &mut rows[k];
            m.elapsed_s = m.elapsed_s.max(r.elapsed_s);
            m.sent += r.sent;
            m.received += r.received;
            m.errors += r.errors;
            m.throughput += r.throughput;
            m.outstanding += r.outstanding;
            m.oldest_outstanding_us = m.oldest_outstanding_us.max(r.oldest_outstanding_us);
            // Each process's fewest and most open connections, summed: the merged minimum is a
            // lower bound and the maximum an upper one (the processes' fewest need not fall at
            // the same instant), as a process sums its worker threads.
            m.open_min += r.open_min;
            m.open_max += r.open_max;
            let f = &mut fallback[k];
            for (slot, v) in f.iter_mut().zip([r.p50_us, r.p90_us, r.p99_us, r.p99_9_us, r.max_us]) {
                *slot = match (*slot, v) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }
    let mut previous_end = 0.0;
    for (k, row) in rows.iter_mut().enumerate() {
        let length = row.elapsed_s - previous_end;
        previous_end = row.elapsed_s;
        // The summed throughput (kept above) is the answer whenever the length is unusable.
        if length > 0.0 {
            row.throughput = row.received as f64 / length;
        }
        match latency.get(k).filter(|iv| !iv.histogram.is_empty()) {
            Some(iv) => {
                let s = LatencySummary::from_histogram_ns(&iv.histogram);
                (row.p50_us, row.p90_us, row.p99_us, row.p99_9_us, row.max_us) = (Some(s.p50), Some(s.p90), Some(s.p99), Some(s.p99_9), Some(s.max));
            }
            None => [row.p50_us, row.p90_us, row.p99_us, row.p99_9_us, row.max_us] = fallback[k],
        }
    }
    rows
}

/// Writes merged files into `out`.
/// A forced merge's differing keys go into `config.differing` ({key: [value per shard]}): the
/// typed config can hold one value per key, the file must not pretend there was only one.
fn write(m: &LoadgenFiles, out: &Path, processes: usize, differing: &[(&'static str, Vec<(String, String)>)]) -> Result<(), AnalysisError> {
    fs::create_dir_all(out).map_err(|e| AnalysisError::write(out, e))?;
    let summary_path = out.join(layout::SUMMARY);
    let mut value = serde_json::to_value(&m.summary).expect("summaries always serialize");
    if !differing.is_empty() {
        let listed: BTreeMap<&str, Vec<&str>> = differing.iter().map(|(k, vs)| (*k, vs.iter().map(|(_, v)| v.as_str()).collect())).collect();
        value["config"]["differing"] = serde_json::to_value(listed).expect("strings serialize");
    }
    let json = serde_json::to_string_pretty(&value).expect("summaries always serialize");
    fs::write(&summary_path, json + "\n").map_err(|e| AnalysisError::write(&summary_path, e))?;

    let start = humantime::parse_rfc3339_weak(&m.summary.started_at).unwrap_or(UNIX_EPOCH);
    let comment = format!("merged by wsbench {} from {processes} load-generator processes", wsbench_core::VERSION);
    for (name, log) in [(layout::LATENCY_LOG, &m.latency), (layout::SERVICE_TIME_LOG, &m.service_time), (layout::SEND_LAG_LOG, &m.send_lag)] {
        hist::write_interval_log(&out.join(name), start, &comment, log)?;
    }
    if !m.completion.is_empty() {
        hist::write_interval_log(&out.join(layout::COMPLETION_LOG), start, &comment, &m.completion)?;
    }
    for (name, log) in SETUP_LOGS.iter().zip(&m.setup) {
        if !log.is_empty() {
            hist::write_interval_log(&out.join(name), start, &comment, log)?;
        }
    }

    // The one-way workloads write no intervals.csv, so their merge has none either.
    if m.intervals.is_empty() && m.summary.fanout.is_some() {
        return Ok(());
    }
    let csv_path = out.join(layout::INTERVALS_CSV);
    let csv_err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => AnalysisError::write(&csv_path, io),
        other => AnalysisError::parse(&csv_path, "intervals.csv", format!("{other:?}")),
    };
    let mut w = csv::Writer::from_path(&csv_path).map_err(csv_err)?;
    for row in &m.intervals {
        w.serialize(row).map_err(csv_err)?;
    }
    w.flush().map_err(|e| AnalysisError::write(&csv_path, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hdrhistogram::Histogram;
    use std::time::Duration;
    use wsbench_core::hist::{new_histogram, record_ns};

    fn log_of(values: &[Vec<u64>]) -> Vec<LogInterval> {
        values
            .iter()
            .enumerate()
            .map(|(k, vs)| {
                let mut h = new_histogram();
                vs.iter().for_each(|&v| record_ns(&mut h, v));
                LogInterval { start: Duration::from_secs(k as u64), duration: Duration::from_secs(1), tag: None, histogram: h }
            })
            .collect()
    }

    /// Deterministic spread of latencies from 1 µs to ~1 s, with a tail.
    fn values(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                1_000 + (x % 1_000_000) * (1 + (x >> 60))
            })
            .collect()
    }

    fn counts(h: &Histogram<u64>) -> Vec<(u64, u64)> {
        h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()
    }

    #[test]
    fn merged_histograms_equal_one_histogram_of_all_values_count_for_count() {
        let a = [values(1, 5_000), values(2, 4_000), values(3, 100)];
        let b = [values(4, 3_000), values(5, 6_000)];
        let merged = add_by_index([log_of(&a).as_slice(), log_of(&b).as_slice()]);
        assert_eq!(merged.len(), 3, "as long as the longest shard");
        for (k, iv) in merged.iter().enumerate() {
            let mut all = new_histogram();
            a.get(k).into_iter().chain(b.get(k)).flatten().for_each(|&v| record_ns(&mut all, v));
            assert_eq!(counts(&iv.histogram), counts(&all), "interval {k}");
            assert_eq!(iv.histogram, all, "interval {k}");
        }
        let mut everything = new_histogram();
        a.iter().chain(&b).flatten().for_each(|&v| record_ns(&mut everything, v));
        assert_eq!(counts(&hist::total(&merged)), counts(&everything));
    }

    #[test]
    fn rows_sum_counts_and_take_percentiles_from_the_merged_histogram() {
        let row = |elapsed_s, received, p99_us| IntervalRow {
            elapsed_s,
            sent: received,
            received,
            errors: 1,
            throughput: received as f64,
            p99_us: Some(p99_us),
            open_min: 3,
            open_max: 4,
            ..Default::default()
        };
        let a = vec![row(1.0, 100, 50.0), row(2.0, 200, 60.0)];
        let b = vec![row(1.0, 300, 500.0), row(2.0, 400, 600.0)];
        let latency = log_of(&[vec![10_000; 10], vec![]]);
        let m = combine_rows([a.as_slice(), b.as_slice()], &latency);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].received, m[0].errors, m[0].throughput), (400, 2, 400.0));
        assert_eq!((m[1].received, m[1].throughput), (600, 600.0));
        assert_eq!((m[0].open_min, m[0].open_max), (6, 8), "open connections add up");
        assert!((m[0].p99_us.unwrap() - 10.0).abs() < 0.1, "{:?}", m[0]);
        assert_eq!(m[1].p99_us, Some(600.0), "no histogram: the larger bound");
        let silent = vec![IntervalRow { p99_us: None, ..row(1.0, 0, 0.0) }];
        let m = combine_rows([silent.as_slice(), silent.as_slice()], &log_of(&[vec![]]));
        assert_eq!(m[0].p99_us, None, "no reply anywhere: no percentile, not 0");
    }

    /// A bare summary of `connections` at `rate` (open loop) or closed loop, for tests.
    pub(crate) fn summary(connections: u32, rate: Option<f64>) -> LoadgenSummary {
        let json = serde_json::json!({
            "schema_version": SCHEMA_VERSION, "complete": true, "wsbench_version": "0", "command": [],
            "host": {"hostname": "h", "os": "Linux", "kernel": "6", "arch": "x86_64", "cpus": 2},
            "started_at": "2026-11-25T10:00:00Z", "duration_s": 1.0, "throughput_msgs_per_s": 0.0,
            "messages": {"sent": 0, "received": 0, "errors": 0, "corrupted": 0, "lost": 0},
            "connections": {"target": connections, "established": connections, "failed": 0},
            "latency_us": LatencySummary::default(), "service_time_us": LatencySummary::default(), "send_lag_us": LatencySummary::default(),
            "cpu": {"process_pct": 0.0, "busiest_thread_pct": 0.0}, "warnings": [],
            "config": wsbench_core::plan::LoadPlan { connections, rate, ..Default::default() },
        });
        serde_json::from_value(json).unwrap()
    }

    fn entry(dir: &str, index: u32, count: u32, connections: u32) -> ShardEntry {
        ShardEntry {
            dir: dir.into(),
            shard: Some(wsbench_core::result::ShardReport { index, count, total_connections: connections, total_rate: Some(400.0) }),
            start: Some(wsbench_core::result::StartReport { at: "2026-11-29T04:00:00Z".into(), late_by_s: 0.0, late: false }),
        }
    }

    #[test]
    fn a_shard_set_is_whole_and_consistent_or_refused() {
        let message = |r: Result<(), AnalysisError>| r.unwrap_err().to_string();
        assert!(check_shard_set(&[entry("a", 0, 3, 5), entry("b", 2, 3, 5), entry("c", 1, 3, 5)], &[]).is_ok());
        // Plain processes (no shards) are not this check's business.
        assert!(check_shard_set(&[ShardEntry { dir: "p".into(), shard: None, start: None }], &[]).is_ok());

        let missing = check_shard_set(&[entry("a", 0, 3, 5)], &[AbsentShard { index: 2, why: "c has no summary.json".into() }]);
        assert!(matches!(missing, Err(AnalysisError::MissingShards { count: 3, .. })));
        let text = message(missing);
        assert!(text.contains("shard 1/3 (not among the directories given)") && text.contains("shard 2/3 (c has no summary.json)"), "{text}");
        assert!(!AnalysisError::MissingShards { count: 1, missing: vec![] }.is_bad_input(), "exit 1: wait, not fix the input");

        let conflict = |r: Result<(), AnalysisError>| match r {
            Err(AnalysisError::ShardConflict { detail }) => detail.join("; "),
            other => panic!("{other:?}"),
        };
        assert!(conflict(check_shard_set(&[entry("a", 0, 2, 5), entry("b", 0, 2, 5)], &[])).contains("shard 0 twice: a and b"));
        assert!(conflict(check_shard_set(&[entry("a", 0, 2, 5), entry("b", 1, 3, 5)], &[])).contains("b is shard 1/3 of 3 shards"));
        assert!(conflict(check_shard_set(&[entry("a", 0, 2, 5), entry("b", 1, 2, 6)], &[])).contains("of 6 connections"));
        let mut other_start = entry("b", 1, 2, 5);
        other_start.start.as_mut().unwrap().at = "2026-11-29T05:00:00Z".into();
        assert!(conflict(check_shard_set(&[entry("a", 0, 2, 5), other_start], &[])).contains("began at --start-at 2026-11-29T05:00:00Z"));
        let whole = ShardEntry { dir: "p".into(), shard: None, start: None };
        assert!(conflict(check_shard_set(&[entry("a", 0, 2, 5), whole], &[])).contains("p is a whole load"));
    }

    #[test]
    fn kernel_receive_stamp_counts_of_shards_add_up() {
        use wsbench_core::result::RxTimestampReport;
        let files = |rx: Option<RxTimestampReport>| {
            let mut summary = summary(10, Some(100.0));
            summary.rx_timestamps = rx;
            LoadgenFiles { summary, latency: Vec::new(), service_time: Vec::new(), send_lag: Vec::new(), intervals: Vec::new(), completion: Vec::new(), setup: Default::default() }
        };
        let a = RxTimestampReport { kernel_connections: 5, kernel_echoes: 1_000, shared_stamps: 3, empty_reads: 7, clock_offset_change_ns: 2, ..Default::default() };
        let b = RxTimestampReport { kernel_connections: 4, user_connections: 1, fallback: Some("wss://".into()), kernel_echoes: 900, refused: 1, clock_offset_change_ns: 9, ..Default::default() };
        let m = combine(vec![files(Some(a)), files(Some(b))]).summary.rx_timestamps.expect("both shards had stamps");
        assert_eq!((m.kernel_connections, m.user_connections, m.kernel_echoes, m.shared_stamps, m.refused, m.empty_reads), (9, 1, 1_900, 3, 1, 7));
        assert_eq!((m.fallback.as_deref(), m.clock_offset_change_ns), (Some("wss://"), 9));
        assert_eq!(combine(vec![files(None), files(None)]).summary.rx_timestamps, None);
    }

    fn fanout_files(f: wsbench_core::result::FanoutReport) -> LoadgenFiles {
        let mut summary = summary(10, Some(100.0));
        summary.fanout = Some(f);
        LoadgenFiles { summary, latency: Vec::new(), service_time: Vec::new(), send_lag: Vec::new(), intervals: Vec::new(), completion: log_of(&[vec![1_000; 4]]), setup: Default::default() }
    }

    #[test]
    fn broadcast_shards_add_up_to_what_the_publishers_sent() {
        use wsbench_core::result::FanoutReport;
        // A room of 20, publisher 0 in shard A sent its 200 scheduled messages, publisher 1 in
        // shard B only 190. A expected B's publisher's 200 for its 10 members and counts 100
        // missing; nothing was lost: those 10 messages were never sent.
        let a = FanoutReport {
            published: 200,
            expected_deliveries: 200 * 9 + 200 * 10,
            delivered: 200 * 9 + 190 * 10,
            missing: BTreeMap::from([(NOT_DELIVERED.to_owned(), 100)]),
            expected_by_publishers: Some(200 * 19),
            completion_us: Some(LatencySummary::default()),
            completion_within_shard: true,
            completed: 390,
            ..Default::default()
        };
        let b = FanoutReport { published: 190, expected_deliveries: 190 * 9 + 200 * 10, delivered: 190 * 9 + 200 * 10, missing: BTreeMap::new(), expected_by_publishers: Some(190 * 19), ..a.clone() };
        let m = combine(vec![fanout_files(a.clone()), fanout_files(b)]);
        let f = m.summary.fanout.unwrap();
        assert_eq!((f.published, f.expected_deliveries, f.delivered, f.reach), (390, 390 * 19, 390 * 19, 1.0));
        assert!(f.missing.is_empty(), "{:?}", f.missing);
        assert_eq!(f.completion_us.unwrap().count, 8, "both shards' completion logs");
        assert!(m.summary.failed_checks.is_empty() && m.summary.messages.lost == 0);

        // A member of B that never connected misses 390 deliveries: the whole load says so.
        let mut b = FanoutReport { published: 200, expected_deliveries: 200 * 9 + 200 * 10, delivered: 200 * 9 + 200 * 10 - 390, expected_by_publishers: Some(200 * 19), ..a.clone() };
        b.missing = BTreeMap::from([("receiver never connected".to_owned(), 390)]);
        let a = FanoutReport { delivered: 200 * 9 + 200 * 10, missing: BTreeMap::new(), ..a };
        let m = combine(vec![fanout_files(a), fanout_files(b)]);
        let f = m.summary.fanout.unwrap();
        assert_eq!((f.expected_deliveries - f.delivered, m.summary.messages.lost), (390, 390));
        assert_eq!(f.missing, BTreeMap::from([("receiver never connected".to_owned(), 390)]));
        assert!(m.summary.failed_checks.iter().any(|c| c.starts_with("whole load: 390 of 7600 deliveries missing")), "{:?}", m.summary.failed_checks);
    }

    #[test]
    fn the_shards_of_one_trial_agree_and_other_loads_do_not() {
        // A trial's rate is split in proportion to connections: 4, 3 and 3 connections of 9000 msgs/s.
        let shards = [summary(4, Some(3600.0)), summary(3, Some(2700.0)), summary(3, Some(2700.0))];
        let ids: Vec<_> = shards.iter().map(|s| identity(s, None)).collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        let key = |s: &LoadgenSummary, k: &str| identity(s, None).into_iter().find(|(n, _)| *n == k).unwrap().1;
        assert_ne!(key(&summary(4, Some(3600.0)), "rate plan"), key(&summary(4, Some(7200.0)), "rate plan"));
        assert_ne!(key(&summary(4, None), "rate plan"), key(&summary(4, Some(3600.0)), "rate plan"));
        let mut text = summary(4, None);
        text.config.mode = wsbench_core::plan::Mode::Text;
        assert_eq!(key(&text, "mode"), "text");
    }
}
