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
pub mod churn;
pub mod client;
pub mod connection;
pub mod fanout;
pub mod fleet;
pub mod idle;
pub mod pacer;
pub mod progress;
pub mod recorder;
pub mod rxstamp;
pub mod schedule;
pub mod selfcheck;
pub mod session;
pub mod setup;
pub mod template;
pub mod transport;
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
use wsbench_core::layout;
use wsbench_core::result::{ConnectionCounts, ConnectionSetup, CpuUse, HostInfo, LoadgenSummary, RateReport, RxTimestampReport, ShardReport, StartReport};
use setup::SetupTimes;

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
/// With --start-at, connecting begins this long (plus the connect phase's own length at
/// --connect-rate) before the shared start.
pub(crate) const START_LEAD: Duration = Duration::from_secs(2);
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
        return autobahn::run_main(addr, &args.agent, args.autobahn_deflate);
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
    if !plan.idle.is_empty() {
        return run_idle(plan, command);
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the tokio runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let result = rt.block_on(async {
        // Installed before anything starts, so a signal during the connect phase is handled too.
        let shutdown = shutdown_signal().map_err(|e| RunError::Failed(format!("cannot install signal handlers: {e}")))?;
        run(plan, command, shutdown).await
    });
    conclude(result)
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
    let result = rt.block_on(async {
        let shutdown = shutdown_signal().map_err(|e| RunError::Failed(format!("cannot install signal handlers: {e}")))?;
        // A shard writes into its own folder, which its summary names.
        let summary = fanout::run(plan, command, shutdown).await?;
        if let Some(dir) = &summary.config.out {
            writer::write_summary(dir, &summary).map_err(RunError::Failed)?;
        }
        Ok(summary)
    });
    conclude(result)
}

/// The end of every run, whatever its workload: the report (see [`report`]) and the exit code.
fn conclude(result: Result<LoadgenSummary, RunError>) -> ExitCode {
    match result {
        Ok(summary) => {
            report(&summary, summary.config.out.as_deref());
            ExitCode::from(exit_code(&summary))
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

/// The exit code of a run that produced a summary: [`EXIT_OK`] when it is complete and passed
/// every check (unanswered, unmatched and unsolicited messages, failed connections, a late
/// shard, missing deliveries), else [`EXIT_FAILED`].
pub fn exit_code(s: &LoadgenSummary) -> u8 {
    if s.passed() { EXIT_OK } else { EXIT_FAILED }
}

/// [`run_main`] for the idle warm-up probe ([`idle`]).
fn run_idle(plan: LoadPlan, command: Vec<String>) -> ExitCode {
    let target = match args::target(&plan) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the tokio runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let out = plan.out.clone();
    let (summary, hists, started) = tokio::task::LocalSet::new().block_on(&rt, idle::run(plan, &target, command));
    if let Some(dir) = &out {
        let written = std::fs::create_dir_all(dir).map_err(|e| e.to_string()).and_then(|()| idle::write_files(dir, &summary, &hists, started)).and_then(|()| writer::write_summary(dir, &summary));
        if let Err(e) = written {
            eprintln!("loadgen: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    }
    match &out {
        None => report(&summary, None),
        Some(_) => {
            for p in &summary.idle {
                eprintln!(
                    "loadgen: after {} idle: first message p50 {} p99 {} ({} connections{})",
                    wsbench_core::units::format_duration(Duration::from_secs_f64(p.idle_s)),
                    latency_us(p.latency_us.p50),
                    latency_us(p.latency_us.p99),
                    p.latency_us.count,
                    if p.lost > 0 { format!(", {} lost", p.lost) } else { String::new() }
                );
            }
            if let Some(r) = &summary.reason {
                eprintln!("loadgen: {r}");
            }
            for c in &summary.failed_checks {
                eprintln!("loadgen: failed: {c}");
            }
        }
    }
    ExitCode::from(if summary.passed() { EXIT_OK } else { EXIT_FAILED })
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
    let target = std::sync::Arc::new(args::target(&plan).map_err(RunError::Usage)?);
    let start_at = plan.start_at.as_deref().map(wsbench_core::clock::parse_rfc3339).transpose().map_err(RunError::Usage)?;
    // A shard runs its part of the whole plan; the whole is recorded in its summary's `shard`.
    let shard = plan.shard.map(|s| ShardReport { index: s.index, count: s.count, total_connections: plan.connections, total_rate: plan.rate });
    // The whole load's schedule, which a shard takes its part of.
    let (whole, shard_of) = (plan.clone(), plan.shard);
    let plan = {
        let mut part = plan.shard_part();
        if let (Some(s), Some(out)) = (plan.shard, &plan.out) {
            part.out = Some(layout::shard_results_dir(out, s.index));
        }
        part
    };
    tokio::pin!(shutdown);
    if let Some(at) = start_at {
        // Connect shortly before the shared start: open connections left idle longer could be
        // closed by the server's keep-alive limits.
        let lead = Duration::from_secs_f64(f64::from(plan.connections) / plan.connect_rate) + START_LEAD;
        let (now, now_wall) = wsbench_core::clock::paired_now();
        let begin = wsbench_core::clock::monotonic_at(at, now, now_wall).saturating_sub(duration_ns(lead));
        tokio::select! {
            sig = shutdown.as_mut() => return Err(RunError::Failed(format!("interrupted by {sig} while waiting for --start-at {}", wall_clock_rfc3339(at)))),
            _ = tokio::time::sleep_until(instant_at(begin)) => {}
        }
    }
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
    warn_if_insecure(&plan);
    let (connect_start_ns, connect_started_at) = (now_ns(), SystemTime::now());
    let fleet = Fleet::launch(&plan, &target, workers, &collector_tx, recycle_rx).map_err(|e| RunError::Failed(format!("cannot start worker threads: {e}")))?;

    let mut control = Control::new(&plan, fleet);
    control.connect_phase(&mut shutdown).await;

    let (now, now_wall) = wsbench_core::clock::paired_now();
    let earliest = now + duration_ns(START_DELAY);
    // With a shared start the schedule stays anchored at it, late or not, so the shards'
    // schedules line up and a late shard's delay shows as latency rather than vanishing.
    let (start_ns, start_report) = match (start_at, &plan.start_at) {
        (Some(at), Some(text)) => {
            let at_ns = wsbench_core::clock::monotonic_at(at, now, now_wall);
            let late_by = earliest.saturating_sub(at_ns);
            let late = late_by > duration_ns(plan.interval);
            if late {
                eprintln!("loadgen: began {:.3} s after --start-at {text}, more than one interval late; the summary marks this run late", late_by as f64 / 1e9);
            }
            (at_ns, Some(StartReport { at: text.clone(), late_by_s: late_by as f64 / 1e9, late }))
        }
        _ => (earliest, None),
    };
    // So late that the measured window is over: sending its whole part at once would only flood
    // the server; nothing is sent and the run fails.
    let window_end_ns = start_ns.saturating_add(duration_ns(plan.warmup) + duration_ns(plan.duration));
    if let Some(st) = start_report.as_ref().filter(|st| st.late && window_end_ns <= earliest) {
        control.reason.get_or_insert(format!("began {:.3} s after --start-at {}, when its measured window had already ended; nothing was sent", st.late_by_s, st.at));
    }
    let timeline = (control.reason.is_none()).then(|| Timeline::new(start_ns, plan.warmup, plan.duration, plan.drain_timeout).with_interval(plan.interval));
    let measured_start_ns = timeline.map_or(now, |t| t.measured_start_ns);
    let start = wsbench_core::clock::wall_at(measured_start_ns, now, now_wall);
    let stage_ends_ns = plan.stages.iter().scan(0u64, |end, st| {
        *end += duration_ns(st.duration);
        Some(*end)
    });
    let _ = begin_tx.send(Begin { start, measured_start_ns, workers, stage_ends_ns: stage_ends_ns.collect() });
    // The workers hold the only interval senders now: the collector ends when they all have.
    drop(collector_tx);
    match timeline {
        Some(tl) => control.fleet.start(fleet::Start::new(tl, &control.established_by_worker).of_load(&whole, shard_of)),
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
    let mut setup = SetupTimes::default();
    let mut churn = churn::ChurnTally::default();
    let (mut rx, mut rx_fallback) = (rxstamp::RxCounts::default(), None);
    for (w, r) in worker_reports.into_iter().enumerate() {
        match r {
            Ok(r) => {
                setup.add(&r.setup);
                churn.add(&r.churn);
                rx.add(&r.rx.0);
                rx_fallback = rx_fallback.or(r.rx.1);
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
    if let Some(dir) = &plan.out {
        let span = Duration::from_nanos(now_ns().saturating_sub(connect_start_ns));
        if let Err(e) = setup.write_logs(dir, connect_started_at, span) {
            control.reason.get_or_insert(e);
        }
    }
    let tls = setup::tls_report(&plan, target.tls.is_some());
    let offered = !plan.subprotocols.is_empty();
    let deflate_offered = plan.deflate.is_some();
    if !plan.churn.is_off() || whole.ramps_connections() {
        // A replacement (or a place a connection ramp opened) that failed to open is a failed
        // connection like any other.
        for (cause, n) in &churn.failures {
            control.connections.failed += n;
            *control.connections.failures.entry(format!("replacement: {cause}")).or_default() += n;
        }
        control.connections.churn = Some(churn.report(duration_s, wsbench_core::alloc::is_counting()));
    }
    let plan_rx = plan.rx_timestamps;
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
        shard,
        start: start_report,
        setup: setup.summary(tls, offered, deflate_offered),
        rx_timestamps: (plan_rx == wsbench_core::plan::RxTimestamps::Kernel).then(|| RxTimestampReport {
            kernel_connections: rx.kernel_connections,
            user_connections: rx.user_connections,
            fallback: rx_fallback.map(str::to_owned),
            kernel_echoes: rx.kernel_echoes,
            shared_stamps: rx.shared_stamps,
            refused: rx.refused,
            empty_reads: rx.empty_reads,
            clock_offset_change_ns: rx.offset_change_ns,
        }),
        asked: shard_of.and_then(|s| shard_asked_rate(&whole, s)),
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
    shard: Option<ShardReport>,
    start: Option<StartReport>,
    setup: ConnectionSetup,
    rx_timestamps: Option<RxTimestampReport>,
    /// The rate asked of this process when the plan's own rate does not say it: a shard of a
    /// connection ramp (see [`shard_asked_rate`]).
    asked: Option<f64>,
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
        rate: i.plan.rate.map(|asked| RateReport { asked_msgs_per_s: i.asked.unwrap_or_else(|| asked_rate(&i.plan, asked)), sent_msgs_per_s: per_s(m.sent) }),
        config: i.plan,
        command: redact_headers(i.command),
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
        shard: i.shard,
        start: i.start,
        setup: i.setup,
        fanout: None,
        idle: Vec::new(),
        rx_timestamps: i.rx_timestamps,
    };
    s.failed_checks = selfcheck::failed_checks(&s);
    s.warnings = selfcheck::warnings(&s);
    s
}

/// The rate asked over the measured window: `rate`, or on a ramp its mean over the stages.
fn asked_rate(plan: &LoadPlan, rate: f64) -> f64 {
    if plan.stages.is_empty() || plan.duration.is_zero() {
        return rate;
    }
    let ramp = schedule::Ramp::new(plan.warmup, rate, &plan.stages);
    let (w, d) = (plan.warmup.as_secs_f64(), plan.duration.as_secs_f64());
    (ramp.messages_at(w + d) - ramp.messages_at(w)) / d
}

/// The rate asked of `shard` of `whole`, a connection ramp, over the measured window: its
/// places' messages, counted from the schedule. Its part of the whole moves with the open
/// count (shard 0 of 2 holds 3 of 5 places, then 3 of 6), so the part's rate is not it.
fn shard_asked_rate(whole: &LoadPlan, shard: wsbench_core::plan::Shard) -> Option<f64> {
    let rate = whole.rate?;
    if !whole.ramps_connections() || whole.duration.is_zero() {
        return None;
    }
    let ramp = schedule::Ramp::new(whole.warmup, rate, &whole.stages);
    let cr = schedule::ConnectionRamp::new(0, whole.warmup, whole.first_connections(), &whole.stages, &ramp);
    let (w, d) = (whole.warmup.as_secs_f64(), whole.duration.as_secs_f64());
    let sent = cr.messages_of(ramp.first_message_at(w), ramp.first_message_at(w + d), |place| shard.owns(u64::from(place)));
    Some(sent as f64 / d)
}

/// Says on stderr that `--insecure` checks nothing, before any connection opens.
pub(crate) fn warn_if_insecure(plan: &LoadPlan) {
    if plan.insecure {
        eprintln!("loadgen: warning: --insecure: the server's TLS certificate is not checked; anyone in the path could be answering");
    }
}

/// The command line as results record it: the values of `--header` replaced, as in the plan.
pub(crate) fn redact_headers(mut command: Vec<String>) -> Vec<String> {
    let redact = |h: &str| format!("{}: {}", h.split_once(':').map_or(h, |(n, _)| n).trim(), wsbench_core::plan::REDACTED);
    let mut next_is_header = false;
    for arg in &mut command {
        if std::mem::take(&mut next_is_header) {
            *arg = redact(arg);
        } else if arg == "--header" {
            next_is_header = true;
        } else if let Some(h) = arg.strip_prefix("--header=") {
            *arg = format!("--header={}", redact(h));
        }
    }
    command
}

/// The end-of-run report. With an output folder: a short summary for people on stdout, as wrk
/// prints one, with the warnings and failed checks on stderr. Without one: the whole summary as
/// JSON on stdout, for a program to read.
fn report(s: &LoadgenSummary, out: Option<&Path>) {
    match out {
        None => match serde_json::to_string_pretty(s) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("loadgen: cannot print the summary: {e}"),
        },
        Some(dir) => print!("{}", human_summary(s, dir)),
    }
    // An incomplete run says why in one line; its warnings follow from that and are in the files.
    match &s.reason {
        Some(reason) => eprintln!("loadgen: {reason}"),
        None => {
            for w in &s.warnings {
                eprintln!("loadgen: warning: {}", w.message);
            }
            for c in &s.failed_checks {
                eprintln!("loadgen: failed: {c}");
            }
        }
    }
}

/// What a person wants to see at the end of a run, in a few aligned lines.
fn human_summary(s: &LoadgenSummary, dir: &Path) -> String {
    let l = &s.latency_us;
    let m = &s.messages;
    let c = &s.connections;
    let pace = match s.rate {
        Some(r) if !s.config.stages.is_empty() => format!("open loop on a ramp of {} stages, {} msgs/s on average", s.config.stages.len(), thousands(r.asked_msgs_per_s)),
        Some(r) => format!("open loop at {} msgs/s", thousands(r.asked_msgs_per_s)),
        None => format!("closed loop, {} in flight per connection", s.config.in_flight),
    };
    let unanswered = if m.lost > 0 { format!(", {} unanswered", thousands(m.lost as f64)) } else { String::new() };
    let failed = if c.failed > 0 { format!(", {} connections failed to open", thousands(f64::from(c.failed))) } else { String::new() };
    let errors = m.errors + m.corrupted;
    let unmatched = if m.unmatched > 0 { format!(", {} unmatched replies", thousands(m.unmatched as f64)) } else { String::new() };
    let unsolicited = if m.unsolicited > 0 { format!(", {} unsolicited", thousands(m.unsolicited as f64)) } else { String::new() };
    let answers = match (&s.fanout, &s.config.foreign) {
        (Some(_), _) => "deliveries",
        (None, Some(_)) => "replies",
        (None, None) => "echoes",
    };
    let fanout = s.fanout.as_ref().map_or(String::new(), |f| {
        let completion = f.completion_us.map(|c| format!(", completion p99 {}", latency_us(c.p99))).unwrap_or_default();
        format!(
            "  fan-out     {} of {} expected deliveries (reach {:.2} %), {} deliveries/s{completion}\n",
            thousands(f.delivered as f64),
            thousands(f.expected_deliveries as f64),
            f.reach * 100.0,
            thousands(f.deliveries_per_s)
        )
    });
    let churn = c.churn.as_ref().map_or(String::new(), |ch| {
        let hs = s.setup.handshake_us.map(|h| format!(", handshake p50 {} p99 {}", latency_us(h.p50), latency_us(h.p99))).unwrap_or_default();
        let allocs = ch.allocations_per_replacement.map(|a| format!(", {a:.1} allocations each")).unwrap_or_default();
        if s.config.ramps_connections() && !s.config.churn.is_off() {
            return format!("\x20 ramp+churn  {} connections opened as the ramp reached them or replaced under churn ({}/s in the window), {} closed (cleanly: {}, not: {}){hs}{allocs}\n", ch.opened, thousands(ch.opened_per_s), ch.clean + ch.unclean, ch.clean, ch.unclean);
        }
        if s.config.ramps_connections() {
            return format!("\x20 ramp        {} connections opened as the ramp reached them, {} closed (cleanly: {}, not: {}){hs}{allocs}\n", ch.opened, ch.clean + ch.unclean, ch.clean, ch.unclean);
        }
        format!("\x20 churn       {} connections replaced ({}/s in the window{hs}{allocs}), {} closed cleanly, {} not\n", ch.opened, thousands(ch.opened_per_s), ch.clean, ch.unclean)
    });
    format!(
        "{} connections, {pace}, {:.1} s measured{}\n\
         \x20 throughput  {} msgs/s ({} {answers})\n\
         \x20 latency     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n\
         \x20 errors      {}{unanswered}{unmatched}{unsolicited}{failed}\n\
         {fanout}\
         {churn}\
         \x20 results     {}\n",
        thousands(f64::from(c.target)),
        s.duration_s,
        if s.reason.is_some() { " (incomplete)" } else { "" },
        thousands(s.throughput_msgs_per_s),
        thousands(m.received as f64),
        latency_us(l.p50),
        latency_us(l.p90),
        latency_us(l.p99),
        latency_us(l.p99_9),
        latency_us(l.max),
        thousands(errors as f64),
        dir.display()
    )
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
    fn header_values_are_left_out_of_the_recorded_command() {
        let argv = ["wsbench-loadgen", "--header", "Authorization: Bearer s3cret", "--header=X-Key:abc", "--url", "ws://x/"].map(String::from).to_vec();
        assert_eq!(redact_headers(argv), ["wsbench-loadgen", "--header", "Authorization: <redacted>", "--header=X-Key: <redacted>", "--url", "ws://x/"]);
    }

    #[test]
    fn every_workload_reports_through_one_summary_and_one_exit_code() {
        let mut s = LoadgenSummary { complete: true, ..summarize_for_test() };
        assert_eq!(exit_code(&s), EXIT_OK);
        s.config.foreign = Some(wsbench_core::plan::Foreign { template: "{seq}".into(), correlation: wsbench_core::plan::Correlation::MatchJson(String::new()) });
        s.messages.unmatched = 3;
        s.messages.unsolicited = 2;
        s.failed_checks = selfcheck::failed_checks(&s);
        assert_eq!(exit_code(&s), EXIT_FAILED, "unmatched replies fail the run");
        let text = human_summary(&s, Path::new("out"));
        assert!(text.contains("replies)") && text.contains("3 unmatched replies, 2 unsolicited"), "{text}");

        let mut s = summarize_for_test();
        s.fanout = Some(wsbench_core::result::FanoutReport { delivered: 990, expected_deliveries: 1_000, reach: 0.99, ..Default::default() });
        let text = human_summary(&s, Path::new("out"));
        assert!(text.contains("deliveries)") && text.contains("990 of 1,000 expected deliveries (reach 99.00 %)"), "{text}");
        s.complete = false;
        assert_eq!(exit_code(&s), EXIT_FAILED, "an incomplete run fails whatever its workload");
    }

    fn summarize_for_test() -> LoadgenSummary {
        summarize(SummaryInputs {
            plan: LoadPlan::default(),
            command: vec!["x".into()],
            started_at: SystemTime::UNIX_EPOCH,
            duration_s: 1.0,
            totals: &Totals::default(),
            connections: ConnectionCounts { target: 1, established: 1, ..Default::default() },
            cpu: CpuUse::default(),
            allocations: Allocations::default(),
            reason: None,
            shard: None,
            start: None,
            setup: ConnectionSetup::default(),
            rx_timestamps: None,
            asked: None,
        })
    }

    #[test]
    fn the_shards_of_a_connection_ramp_are_asked_their_places_messages() {
        use wsbench_core::plan::{Shard, Stage};
        // 4 -> 12 -> 4 at 800 msgs/s: shard 0 holds 3 of 5 places, 4 of 7, ..., so more than half.
        let st = |secs: u64, c: u32| Stage { duration: Duration::from_secs(secs), rate: 800.0, connections: Some(c) };
        let whole = LoadPlan { connections: 4, rate: Some(800.0), warmup: Duration::from_millis(300), duration: Duration::from_secs(5), stages: vec![st(1, 4), st(2, 12), st(2, 4)], ..Default::default() }.with_connection_ramp();
        let asked: Vec<f64> = (0..2).map(|i| shard_asked_rate(&whole, Shard::new(i, 2).unwrap()).unwrap()).collect();
        assert!((asked[0] + asked[1] - 800.0).abs() <= 1.0 / 5.0, "the shards are asked the whole: {asked:?}");
        assert!(asked[0] > 400.0 && asked[1] < 400.0, "{asked:?}");
        assert_eq!(shard_asked_rate(&LoadPlan { rate: Some(800.0), ..Default::default() }, Shard::new(0, 2).unwrap()), None, "a steady load's part is its rate's");
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
            shard: None,
            start: None,
            setup: ConnectionSetup::default(),
            rx_timestamps: None,
            asked: None,
        });
        assert!(s.complete);
        assert_eq!(s.throughput_msgs_per_s, 1_500.0);
        assert_eq!(s.rate, Some(RateReport { asked_msgs_per_s: 2_000.0, sent_msgs_per_s: 2_000.0 }));
        assert_eq!(s.started_at, "1970-01-01T00:00:00Z");
        let kinds: Vec<_> = s.warnings.iter().map(|w| w.kind).collect();
        assert!(kinds.contains(&wsbench_core::warning::WarningKind::RateNotReached), "{kinds:?}");
    }
}
