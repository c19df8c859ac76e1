//! wsbench-loadgen: opens WebSocket connections to a server, sends on a closed- or open-loop
//! schedule, checks every echo and records latency into HdrHistograms.
//!
//! The process has three kinds of threads:
//!
//! - the control thread ([`run`]): waits for the connections, publishes the run's timeline,
//!   watches for signals and for the server going away, and writes the summary at the end;
//! - worker threads ([`fleet`]), each a current-thread tokio runtime running its share of the
//!   connections ([`connection`]) and recording into its own histograms ([`recorder`]);
//! - the collector thread ([`writer`]), which merges the workers' intervals and writes the
//!   interval logs and `intervals.csv` as the run goes.
//!
//! [`run_main`] is the whole program for the `wsbench-loadgen` binary and the `wsbench loadgen`
//! subcommand; [`run`] is the same run as a library call, with the shutdown signal as a future.
//! When the binary counts allocations ([`wsbench_core::alloc`]), the summary reports them per
//! message over the measured window: the whole process, and the worker threads alone.

pub mod args;
pub mod autobahn;
pub mod capped;
pub mod client;
pub mod connection;
pub mod fanout;
pub mod fleet;
pub mod pacer;
pub mod progress;
pub mod recorder;
pub mod schedule;
pub mod selfcheck;
pub mod session;
pub mod writer;
pub mod zero;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, SystemTime};

use wsbench_core::alloc;
use wsbench_core::clock::{now_ns, process_cpu_ns, wall_clock_rfc3339};
use wsbench_core::hist::LatencySummary;
use wsbench_core::plan::LoadPlan;
use wsbench_core::result::{ConnectionCounts, CpuUse, HostInfo, LoadgenSummary, RateReport};

pub use args::LoadgenArgs;
use connection::Stop;
use fleet::{instant_at, Event, Fleet};
use progress::{thousands, Progress};
use wsbench_core::units::latency_us;
use schedule::{duration_ns, Timeline};
use writer::{Begin, OutputFiles, Totals};

/// Exit code of a complete run.
pub const EXIT_OK: u8 = 0;
/// Exit code of a run that failed or was cut short (files are still written): `complete: false`,
/// or `failed_checks` (messages unanswered or connections failed beyond `--max-loss` and
/// `--max-failed-connections`).
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a usage error (bad flag or value); nothing was started.
pub const EXIT_USAGE: u8 = 2;

/// Time between the end of the connect phase and the first send, so that every worker has
/// received the timeline and started its connections' tasks before the schedule begins.
const START_DELAY: Duration = Duration::from_millis(50);
/// Intervals (seconds) each worker may be ahead of the collector before its hand-over waits;
/// a collector that far behind has a stuck disk, and waiting beats growing without bound.
const COLLECTOR_BACKLOG_S: usize = 64;
/// After SIGINT/SIGTERM, echoes already on the way are awaited this long at most.
const INTERRUPT_DRAIN: Duration = Duration::from_millis(500);

/// Why a run could not be carried out at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plan is invalid; nothing was started (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The run could not be set up or its results not written (exit code 1).
    #[error("{0}")]
    Failed(String),
}

/// The whole program: checks the arguments, runs, reports, and returns the exit code
/// (0 complete, 1 failed or interrupted, 2 usage error). `command` is recorded in the summary.
pub fn run_main(args: LoadgenArgs, command: Vec<String>) -> ExitCode {
    if let Some(addr) = &args.autobahn {
        return autobahn::run_main(addr, &args.agent);
    }
    let plan = match args.into_plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    fleet::raise_fd_limit();
    if plan.workload.is_fanout() {
        return run_fanout(plan, command);
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the tokio runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let out = plan.out.clone();
    let result = rt.block_on(async {
        // Installed before anything starts, so a signal during the connect phase is handled too.
        let shutdown = shutdown_signal().map_err(|e| RunError::Failed(format!("cannot install signal handlers: {e}")))?;
        run(plan, command, shutdown).await
    });
    match result {
        Ok(summary) => {
            report(&summary, out.as_deref());
            ExitCode::from(if summary.passed() { EXIT_OK } else { EXIT_FAILED })
        }
        Err(RunError::Usage(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(RunError::Failed(e)) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// [`run_main`] for the broadcast, push and sink workloads ([`fanout`]).
fn run_fanout(plan: LoadPlan, command: Vec<String>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(plan.threads).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the tokio runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let out = plan.out.clone();
    let result = rt.block_on(async {
        let shutdown = shutdown_signal().map_err(|e| RunError::Failed(format!("cannot install signal handlers: {e}")))?;
        if let Some(dir) = &out {
            std::fs::create_dir_all(dir).map_err(|e| RunError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        fanout::run(plan, command, shutdown).await
    });
    match result {
        Ok(summary) => {
            if let Some(dir) = &out {
                if let Err(e) = writer::write_summary(dir, &summary) {
                    eprintln!("loadgen: {e}");
                    return ExitCode::from(EXIT_FAILED);
                }
            } else {
                match serde_json::to_string_pretty(&summary) {
                    Ok(text) => println!("{text}"),
                    Err(e) => eprintln!("loadgen: cannot print the summary: {e}"),
                }
            }
            if let Some(f) = &summary.fanout {
                let completion = f.completion_us.map(|c| format!(", completion p99 {}", latency_us(c.p99))).unwrap_or_default();
                eprintln!(
                    "loadgen: {} deliveries of {} expected (reach {:.2} %), {} deliveries/s; one-way p50 {} p99 {}{completion}{}",
                    f.delivered,
                    f.expected_deliveries,
                    f.reach * 100.0,
                    thousands(f.deliveries_per_s),
                    latency_us(summary.latency_us.p50),
                    latency_us(summary.latency_us.p99),
                    summary.reason.as_deref().map(|r| format!("; {r}")).unwrap_or_default(),
                );
            }
            for c in &summary.failed_checks {
                eprintln!("loadgen: failed: {c}");
            }
            ExitCode::from(if summary.passed() { EXIT_OK } else { EXIT_FAILED })
        }
        Err(RunError::Usage(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(RunError::Failed(e)) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Resolves with the signal's name on the first SIGINT or SIGTERM.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = String>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => "SIGINT".to_owned(),
            _ = term.recv() => "SIGTERM".to_owned(),
        }
    })
}

/// Runs one load-generator process's plan to the end and returns its summary; when the plan
/// has an output folder, the interval logs, `intervals.csv` and `summary.json` are written
/// there. The run stops early, with `complete: false`, when `shutdown` resolves (its output
/// names the signal), when no connection can be opened, or when the server has dropped every
/// connection. Must be called inside a tokio runtime; the workers run on their own threads.
pub async fn run(plan: LoadPlan, command: Vec<String>, shutdown: impl Future<Output = String>) -> Result<LoadgenSummary, RunError> {
    args::validate(&plan).map_err(RunError::Usage)?;
    let addr = args::target_addr(&plan.url).map_err(RunError::Usage)?;
    let files = OutputFiles::create(plan.out.as_deref()).map_err(RunError::Failed)?;
    // More threads than connections would only idle.
    let workers = plan.threads.min(plan.connections as usize);

    // Bounded, because a bounded std channel is one array allocated here, while an unbounded one
    // allocates a block every 31 sends: from the worker threads, inside the measured window.
    let (collector_tx, collector_rx) = std_mpsc::sync_channel(workers.max(1) * COLLECTOR_BACKLOG_S);
    let (begin_tx, begin_rx) = std_mpsc::channel();
    let (recycle_tx, recycle_rx): (Vec<_>, Vec<_>) = (0..workers).map(|_| std_mpsc::channel()).unzip();
    let collector = std::thread::Builder::new()
        .name("wsbench-collector".into())
        .spawn(move || writer::collect(files, begin_rx, collector_rx, recycle_tx, Progress::for_stderr()))
        .map_err(|e| RunError::Failed(format!("cannot start the collector thread: {e}")))?;
    let fleet = Fleet::launch(&plan, &addr, workers, &collector_tx, recycle_rx).map_err(|e| RunError::Failed(format!("cannot start worker threads: {e}")))?;

    let mut control = Control::new(&plan, fleet);
    tokio::pin!(shutdown);
    control.connect_phase(&mut shutdown).await;

    let now = now_ns();
    let timeline = (control.reason.is_none()).then(|| Timeline::new(now + duration_ns(START_DELAY), plan.warmup, plan.duration, plan.drain_timeout).with_interval(plan.interval));
    let measured_start_ns = timeline.map_or(now, |t| t.measured_start_ns);
    let start = SystemTime::now() + Duration::from_nanos(measured_start_ns - now);
    let _ = begin_tx.send(Begin { start, measured_start_ns, workers });
    // The workers hold the only interval senders now: the collector ends when they all have.
    drop(collector_tx);
    match timeline {
        Some(tl) => control.fleet.start(fleet::Start::new(tl, &control.established_by_worker)),
        None => control.stop_now(now, now),
    }

    control.run_phase(timeline, &mut shutdown, plan.drain_timeout).await;

    // Blocking joins are fine here: the event channel closed, so every worker has finished its
    // work, and the collector ends with the last interval the workers sent before that.
    let worker_reports = control.fleet.join_all();
    let totals = collector.join().unwrap_or_else(|_| Totals { write_error: Some("the collector thread failed".into()), ..Totals::default() });
    let mut busiest = 0.0f64;
    // The workers' allocations over the window; unknown when any worker has no figure.
    let mut worker_allocations = Some(0u64);
    for (w, r) in worker_reports.into_iter().enumerate() {
        match r {
            Ok(r) => {
                busiest = busiest.max(r.cpu_pct.unwrap_or(0.0));
                worker_allocations = worker_allocations.zip(r.allocations).map(|(a, b)| a + b);
            }
            Err(panic) => {
                worker_allocations = None;
                control.reason.get_or_insert(format!("worker thread {w} failed: {panic}"));
            }
        }
    }
    if let Some(e) = &totals.write_error {
        control.reason.get_or_insert(e.clone());
    }

    let window_end = timeline.map_or(measured_start_ns, |tl| fleet::window_end(&tl, control.stop));
    let duration_s = window_end.saturating_sub(measured_start_ns) as f64 / 1e9;
    let summary = summarize(SummaryInputs {
        plan,
        command,
        started_at: start,
        duration_s,
        totals: &totals,
        connections: control.connections.clone(),
        cpu: CpuUse { process_pct: control.process_cpu_pct().unwrap_or(0.0), busiest_thread_pct: busiest },
        allocations: Allocations { process: control.process_allocations(), workers: worker_allocations },
        reason: control.reason.clone(),
    });
    if let Some(dir) = &summary.config.out {
        writer::write_summary(dir, &summary).map_err(RunError::Failed)?;
    }
    Ok(summary)
}

/// The control thread's state while a run is under way.
struct Control {
    fleet: Fleet,
    workers_connected: usize,
    /// Connections each worker opened.
    established_by_worker: Vec<u32>,
    connections: ConnectionCounts,
    first_error: Option<String>,
    url: String,
    /// Why the run is incomplete, once it is known.
    reason: Option<String>,
    shutdown_seen: bool,
    /// The stop sent to the workers; its `at_ns` ends the measured window.
    stop: Option<Stop>,
    dropped: BTreeMap<String, u32>,
    /// The process's clocks and allocation count at the measured window's start and end.
    mark_start: Option<Mark>,
    mark_end: Option<Mark>,
}

impl Control {
    fn new(plan: &LoadPlan, fleet: Fleet) -> Self {
        Self {
            established_by_worker: vec![0; fleet.workers()],
            fleet,
            workers_connected: 0,
            connections: ConnectionCounts { target: plan.connections, ..Default::default() },
            first_error: None,
            url: plan.url.clone(),
            reason: None,
            shutdown_seen: false,
            stop: None,
            dropped: BTreeMap::new(),
            mark_start: None,
            mark_end: None,
        }
    }

    /// Waits until every worker has finished connecting, or for a signal. Sets `reason` when
    /// the run cannot go on.
    async fn connect_phase<F: Future<Output = String>>(&mut self, shutdown: &mut std::pin::Pin<&mut F>) {
        let workers = self.fleet.workers();
        while self.workers_connected < workers {
            tokio::select! {
                biased;
                sig = shutdown.as_mut() => {
                    self.shutdown_seen = true;
                    self.reason = Some(format!("interrupted by {sig}"));
                    return;
                }
                ev = self.fleet.events.recv() => match ev {
                    Some(ev) => self.on_event(ev, 0),
                    None => break,
                },
            }
        }
        if self.connections.established == 0 {
            let why = self.first_error.clone().unwrap_or_else(|| "no worker reported".into());
            self.reason = Some(format!("no connection to {} could be opened: {why}", self.url));
        }
    }

    /// Runs until every worker has ended: reads the process CPU clock at the window's edges,
    /// and stops the run early on a signal or when the server has dropped every connection.
    async fn run_phase<F: Future<Output = String>>(&mut self, timeline: Option<Timeline>, shutdown: &mut std::pin::Pin<&mut F>, drain_timeout: Duration) {
        let (ms, me) = timeline.map_or((0, 0), |t| (t.measured_start_ns, t.measured_end_ns));
        loop {
            let window_open = timeline.is_some() && self.stop.is_none();
            tokio::select! {
                biased;
                sig = shutdown.as_mut(), if !self.shutdown_seen => {
                    self.shutdown_seen = true;
                    let now = now_ns();
                    if self.stop.is_none() {
                        self.reason.get_or_insert(format!("interrupted by {sig}"));
                        self.stop_now(now, now + duration_ns(drain_timeout.min(INTERRUPT_DRAIN)));
                    }
                }
                ev = self.fleet.events.recv() => match ev {
                    Some(ev) => self.on_event(ev, me),
                    None => break,
                },
                _ = tokio::time::sleep_until(instant_at(ms)), if window_open && self.mark_start.is_none() => {
                    self.mark_start = Some(Mark::now());
                }
                _ = tokio::time::sleep_until(instant_at(me)), if window_open && self.mark_start.is_some() && self.mark_end.is_none() => {
                    self.mark_end = Some(Mark::now());
                }
            }
        }
        if self.mark_start.is_some() && self.mark_end.is_none() {
            self.mark_end = Some(Mark::now());
        }
    }

    fn on_event(&mut self, ev: Event, measured_end_ns: u64) {
        match ev {
            // Also after an interrupt during the connect phase: the counts still belong in the summary.
            Event::Connected { worker, established, failures, first_error } => {
                self.workers_connected += 1;
                if let Some(n) = self.established_by_worker.get_mut(worker) {
                    *n = established;
                }
                self.connections.established += established;
                for (cause, n) in failures {
                    self.connections.failed += n;
                    *self.connections.failures.entry(cause).or_default() += n;
                }
                if self.first_error.is_none() {
                    self.first_error = first_error;
                }
            }
            Event::Dropped(cause) => self.on_dropped(cause, measured_end_ns),
        }
    }

    fn on_dropped(&mut self, cause: String, measured_end_ns: u64) {
        *self.dropped.entry(cause).or_default() += 1;
        let dropped: u32 = self.dropped.values().sum();
        let now = now_ns();
        // With no connection left the run cannot go on. Once the window is over the figures
        // are complete; the drops show up as errors and lost messages only.
        if dropped >= self.connections.established && self.stop.is_none() && now < measured_end_ns {
            self.reason.get_or_insert(format!("server closed {dropped} of {} connections ({})", self.connections.established, describe_causes(&self.dropped)));
            self.stop_now(now, now);
        }
    }

    /// Ends the measured window now and asks every worker to stop.
    fn stop_now(&mut self, now: u64, drain_until_ns: u64) {
        let stop = Stop { at_ns: now, drain_until_ns };
        self.stop = Some(stop);
        self.fleet.stop(stop);
        if self.mark_start.is_some() && self.mark_end.is_none() {
            self.mark_end = Some(Mark { wall_ns: now, ..Mark::now() });
        }
    }

    fn process_cpu_pct(&self) -> Option<f64> {
        let (a, b) = (self.mark_start?, self.mark_end?);
        (b.wall_ns > a.wall_ns).then(|| b.cpu_ns.saturating_sub(a.cpu_ns) as f64 * 100.0 / (b.wall_ns - a.wall_ns) as f64)
    }

    /// Allocations of the whole process over the measured window.
    fn process_allocations(&self) -> Option<u64> {
        Some(self.mark_end?.allocations.saturating_sub(self.mark_start?.allocations))
    }
}

/// The process's clocks and allocation count at one edge of the measured window.
#[derive(Debug, Clone, Copy)]
struct Mark {
    wall_ns: u64,
    cpu_ns: u64,
    allocations: u64,
}

impl Mark {
    fn now() -> Self {
        Self { wall_ns: now_ns(), cpu_ns: process_cpu_ns(), allocations: alloc::allocations() }
    }
}

/// `close 1001 going away` when every connection ended the same way, else each way with its count.
pub(crate) fn describe_causes(causes: &BTreeMap<String, u32>) -> String {
    if causes.len() == 1 {
        return causes.keys().next().cloned().unwrap_or_default();
    }
    let mut by_count: Vec<_> = causes.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    by_count.iter().map(|(c, n)| format!("{n}× {c}")).collect::<Vec<_>>().join(", ")
}

/// Everything a summary is made of.
struct SummaryInputs<'a> {
    plan: LoadPlan,
    command: Vec<String>,
    started_at: SystemTime,
    duration_s: f64,
    totals: &'a Totals,
    connections: ConnectionCounts,
    cpu: CpuUse,
    allocations: Allocations,
    reason: Option<String>,
}

/// Allocations over the measured window; `None` where the window never began.
#[derive(Debug, Clone, Copy, Default)]
struct Allocations {
    /// The whole process.
    process: Option<u64>,
    /// The worker threads together.
    workers: Option<u64>,
}

/// Assembles `summary.json` and its warnings.
fn summarize(i: SummaryInputs<'_>) -> LoadgenSummary {
    let m = i.totals.counts;
    let per_s = |n: u64| if i.duration_s > 0.0 { n as f64 / i.duration_s } else { 0.0 };
    let mut s = LoadgenSummary {
        schema_version: wsbench_core::SCHEMA_VERSION,
        complete: i.reason.is_none(),
        reason: i.reason,
        wsbench_version: wsbench_core::VERSION.to_owned(),
        rate: i.plan.rate.map(|asked| RateReport { asked_msgs_per_s: asked, sent_msgs_per_s: per_s(m.sent) }),
        config: i.plan,
        command: i.command,
        host: HostInfo::current(),
        started_at: wall_clock_rfc3339(i.started_at),
        duration_s: i.duration_s,
        throughput_msgs_per_s: per_s(m.received_in_window()),
        messages: m,
        connections: ConnectionCounts { held: (i.totals.held_min != u32::MAX).then_some(i.totals.held_min), ..i.connections },
        latency_us: LatencySummary::from_histogram_ns(&i.totals.latency),
        service_time_us: LatencySummary::from_histogram_ns(&i.totals.service_time),
        send_lag_us: LatencySummary::from_histogram_ns(&i.totals.send_lag),
        cpu: i.cpu,
        allocations_per_message: i.allocations.process.and_then(|a| alloc::per_message(a, m.received)),
        worker_allocations_per_message: i.allocations.workers.and_then(|a| alloc::per_message(a, m.received)),
        unanswered_min_age_us: (m.lost > 0 && i.totals.unanswered_min_ns != u64::MAX).then(|| i.totals.unanswered_min_ns as f64 / 1_000.0),
        failed_checks: Vec::new(),
        warnings: Vec::new(),
        fanout: None,
    };
    s.failed_checks = selfcheck::failed_checks(&s);
    s.warnings = selfcheck::warnings(&s);
    s
}

/// The end-of-run report: one line on stderr (plus the warnings of a complete run), and the
/// summary on stdout when there is no output folder to hold it.
fn report(s: &LoadgenSummary, out: Option<&Path>) {
    if out.is_none() {
        match serde_json::to_string_pretty(s) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("loadgen: cannot print the summary: {e}"),
        }
    }
    let files = out.map(|d| format!("; results in {}", d.display())).unwrap_or_default();
    match &s.reason {
        Some(reason) => eprintln!("loadgen: {reason}{files}"),
        None => {
            let l = &s.latency_us;
            eprintln!(
                "loadgen: {} echoes in {:.1} s, {} msgs/s; latency p50 {} p99 {} max {}{files}",
                s.messages.received,
                s.duration_s,
                thousands(s.throughput_msgs_per_s),
                latency_us(l.p50),
                latency_us(l.p99),
                latency_us(l.max)
            );
            for w in &s.warnings {
                eprintln!("loadgen: warning: {}", w.message);
            }
            for c in &s.failed_checks {
                eprintln!("loadgen: failed: {c}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_read_as_one_phrase() {
        let mut c = BTreeMap::new();
        c.insert("close 1001 going away".to_owned(), 10);
        assert_eq!(describe_causes(&c), "close 1001 going away");
        c.insert("connection reset".to_owned(), 2);
        assert_eq!(describe_causes(&c), "10× close 1001 going away, 2× connection reset");
    }

    #[test]
    fn summary_rates_come_from_the_window() {
        let mut totals = Totals::default();
        totals.counts.sent = 4_000;
        totals.counts.received = 3_000;
        let s = summarize(SummaryInputs {
            plan: LoadPlan { rate: Some(2_000.0), ..Default::default() },
            command: vec!["x".into()],
            started_at: SystemTime::UNIX_EPOCH,
            duration_s: 2.0,
            totals: &totals,
            connections: ConnectionCounts { target: 10, established: 10, failed: 0, ..Default::default() },
            cpu: CpuUse::default(),
            allocations: Allocations { process: Some(10), workers: Some(0) },
            reason: None,
        });
        assert!(s.complete);
        assert_eq!(s.throughput_msgs_per_s, 1_500.0);
        assert_eq!(s.rate, Some(RateReport { asked_msgs_per_s: 2_000.0, sent_msgs_per_s: 2_000.0 }));
        assert_eq!(s.started_at, "1970-01-01T00:00:00Z");
        let kinds: Vec<_> = s.warnings.iter().map(|w| w.kind).collect();
        assert!(kinds.contains(&wsbench_core::warning::WarningKind::RateNotReached), "{kinds:?}");
    }
}
