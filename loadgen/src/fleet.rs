//! Worker threads: each opens its share of the connections, runs them, and hands its intervals
//! to the collector.
//!
//! Worker `w` of `n` owns connections `i` with `i % n == w`. Each worker is an OS thread with its
//! own current-thread tokio runtime, so a connection's task, its timer and the worker's
//! histograms live on one core with no locks. The control thread talks to the workers through
//! three channels only: a `watch` that publishes the run's [`Start`] once everyone is connected, a
//! `watch` that asks them to stop early, and an event channel on which they report connection
//! results and connections the server dropped.
//!
//! Open-loop connections are numbered again once every worker has connected: the connections
//! that did open share the whole asked rate, so a connection that failed to open takes no part
//! of the rate with it.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::LocalSet;
use wsbench_core::clock::{now_ns, thread_cpu_ns};
use wsbench_core::plan::{LoadPlan, Shard};

use crate::client::{self, Client, ConnectError, ConnectTimes};
use crate::connection::{ConnEnd, ConnShared, SendMode, Stop};
use crate::pacer::SendClock;
use crate::recorder::{IntervalSet, Recorder};
use crate::schedule::{duration_ns, ConnectionRamp, Ramp, ShardSpan, Timeline};
use crate::setup::SetupTimes;
use crate::transport::Target;

/// Bound on opening one connection (TCP connect and WebSocket handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a worker tells the control thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Worker `worker`'s connect phase is over; `failures` counts the failed connections by cause.
    Connected { worker: usize, established: u32, failures: BTreeMap<String, u32>, first_error: Option<String> },
    /// The peer dropped one connection mid-run; the text says how.
    Dropped(String),
}

/// What a worker reports when its thread ends.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// The worker thread's CPU use over the measured window, in % of one core; `None` when the
    /// window never began.
    pub cpu_pct: Option<f64>,
    /// Heap allocations made by the worker thread over the measured window (all zero when the
    /// process does not count allocations); `None` when the window never began.
    pub allocations: Option<u64>,
    /// How long this worker's connections took to open, and their first round trips
    /// (replacements under churn included).
    pub setup: SetupTimes,
    /// What churn did on this worker.
    pub churn: crate::churn::ChurnTally,
    /// What kernel receive timestamps did on this worker, and why a connection fell back.
    pub rx: (crate::rxstamp::RxCounts, Option<&'static str>),
}

/// The control thread's handle on all workers.
/// What the workers learn when the run begins.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub timeline: Timeline,
    /// Open connections of the whole process.
    pub established: u32,
    /// Per worker, the number its first open connection gets (its connections follow it).
    pub first_index: Arc<[u32]>,
    /// A shard's place in the whole load's open-loop schedule; `None` for a whole load, and
    /// for a shard of a connection ramp, whose places keep their numbers in the whole.
    pub span: Option<ShardSpan>,
    /// The ramp of the whole load's rate (`None`: a steady rate), made once for the process.
    pub ramp: Option<&'static Ramp>,
    /// A connection ramp: the whole load's open count and who sends what (`None`: no ramp).
    pub connection_ramp: Option<&'static ConnectionRamp>,
    /// A shard of a connection ramp: its place `j` is the whole load's place `shard.global_index(j)`.
    pub shard: Option<Shard>,
}

impl Start {
    /// The start of a run whose workers opened `established[w]` connections each.
    pub fn new(timeline: Timeline, established: &[u32]) -> Self {
        let first_index = established.iter().scan(0u32, |next, n| Some(std::mem::replace(next, *next + n))).collect();
        Self { timeline, established: established.iter().sum(), first_index, span: None, ramp: None, connection_ramp: None, shard: None }
    }

    /// The same start for this process as `shard` of `whole` (or all of it): the open-loop
    /// schedule of the whole load, its ramps made once here. Shards of a ramp follow the
    /// whole load's ramp, so that together they send its one-process schedule.
    pub fn of_load(self, whole: &LoadPlan, shard: Option<Shard>) -> Self {
        let Some(rate) = whole.rate else { return self };
        let ramp = (!whole.stages.is_empty()).then(|| Ramp::new(whole.warmup, rate, &whole.stages).leak());
        let connection_ramp = ramp.filter(|_| whole.ramps_connections()).map(|r| ConnectionRamp::new(self.timeline.start_ns, whole.warmup, whole.first_connections(), &whole.stages, r).leak());
        // A connection ramp's places send by their numbers in the whole, never by a span.
        let span = shard.filter(|_| connection_ramp.is_none()).map(|s| ShardSpan::new(s, whole.connections, rate));
        Self { span, ramp, connection_ramp, shard: shard.filter(|_| connection_ramp.is_some()), ..self }
    }
}

pub struct Fleet {
    threads: Vec<JoinHandle<WorkerReport>>,
    timeline: watch::Sender<Option<Start>>,
    stop: watch::Sender<Option<Stop>>,
    /// Closed once every worker thread has ended.
    pub events: mpsc::UnboundedReceiver<Event>,
}

impl Fleet {
    /// Starts `workers` threads that begin connecting at once, at `plan.connect_rate` in total.
    /// `recycled[w]` is where the collector sends worker `w`'s emptied interval sets back.
    pub fn launch(
        plan: &LoadPlan,
        target: &Arc<Target>,
        workers: usize,
        collector: &std_mpsc::SyncSender<IntervalSet>,
        recycled: Vec<std_mpsc::Receiver<IntervalSet>>,
    ) -> std::io::Result<Fleet> {
        assert_eq!(recycled.len(), workers);
        let (events_tx, events) = mpsc::unbounded_channel();
        let (timeline, timeline_rx) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(None);
        if plan.realtime {
            // Asked once on a thread that does nothing, so a refusal leaves no worker behind.
            let (hold, held) = std_mpsc::channel::<()>();
            let probe = std::thread::Builder::new().name("wsbench-realtime-check".into()).spawn(move || {
                let _ = held.recv();
                WorkerReport::default()
            })?;
            let allowed = set_realtime(&probe);
            drop(hold);
            let _ = probe.join();
            allowed?;
        }
        // Checked by `args::validate` already; compiled once here, cloned per worker.
        let foreign = plan.foreign.as_ref().map(crate::template::Foreign::new).transpose().map_err(std::io::Error::other)?;
        let connect_start_ns = now_ns();
        let mut threads = Vec::with_capacity(workers);
        for (id, recycled) in recycled.into_iter().enumerate() {
            let job = WorkerJob {
                id,
                connections: (0..plan.connections).filter(|i| *i as usize % workers == id).collect(),
                plan: plan.clone(),
                foreign: foreign.clone(),
                target: Arc::clone(target),
                connect_start_ns,
                events: events_tx.clone(),
                timeline: timeline_rx.clone(),
                stop: stop_rx.clone(),
                collector: collector.clone(),
                recycled,
            };
            let handle = std::thread::Builder::new().name(format!("wsbench-worker-{id}")).spawn(move || job.run())?;
            if plan.realtime {
                // Allowed, as checked above; a refusal now would still end the run.
                set_realtime(&handle)?;
            }
            threads.push(handle);
        }
        Ok(Fleet { threads, timeline, stop, events })
    }

    /// Publishes the run's start: workers start their connections' loops.
    pub fn start(&self, start: Start) {
        self.timeline.send_replace(Some(start));
    }

    /// Asks every worker to stop sending and drain until `stop.drain_until_ns`.
    pub fn stop(&self, stop: Stop) {
        self.stop.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(stop);
                true
            } else {
                false
            }
        });
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Waits for every worker thread; a panicked worker gives `Err` with its message.
    pub fn join_all(&mut self) -> Vec<Result<WorkerReport, String>> {
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|t| {
                t.join().map_err(|p| {
                    let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
                    msg.unwrap_or_else(|| "unknown panic".into())
                })
            })
            .collect()
    }
}

/// Everything one worker thread needs.
struct WorkerJob {
    id: usize,
    /// Global indices of this worker's connections.
    connections: Vec<u32>,
    plan: LoadPlan,
    /// Template loads: the compiled template and correlation rule.
    foreign: Option<crate::template::Foreign>,
    target: Arc<Target>,
    connect_start_ns: u64,
    events: mpsc::UnboundedSender<Event>,
    timeline: watch::Receiver<Option<Start>>,
    stop: watch::Receiver<Option<Stop>>,
    collector: std_mpsc::SyncSender<IntervalSet>,
    recycled: std_mpsc::Receiver<IntervalSet>,
}

impl WorkerJob {
    fn run(self) -> WorkerReport {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => LocalSet::new().block_on(&rt, self.main()),
            Err(e) => {
                // Report the connections as failed so the control thread does not wait for them.
                let first_error = format!("worker {} cannot start a tokio runtime: {e}", self.id);
                let failures = BTreeMap::from([(first_error.clone(), self.connections.len() as u32)]);
                let _ = self.events.send(Event::Connected { worker: self.id, established: 0, failures, first_error: Some(first_error) });
                WorkerReport::default()
            }
        }
    }

    async fn main(mut self) -> WorkerReport {
        grow_defer_list().await;
        let (conns, setup) = self.connect_all().await;
        let mut stop_rx = self.stop.clone();
        let timeline = tokio::select! {
            biased;
            _ = stop_rx.wait_for(|s| s.is_some()) => None,
            t = self.timeline.wait_for(|t| t.is_some()) => t.ok().and_then(|t| t.clone()),
        };
        let Some(start) = timeline else {
            // Stopped before the run began: close politely and report an empty interval.
            for (_, ws) in conns {
                let _ = tokio::time::timeout(Duration::from_millis(200), ws.close_unused()).await;
            }
            let mut rec = Recorder::new(self.id);
            let now = now_ns();
            rec.begin(now);
            let _ = self.collector.send(rec.finish(now));
            return WorkerReport { setup, ..WorkerReport::default() };
        };
        self.run_connections(conns, start, setup).await
    }

    /// Opens this worker's connections, each at its slot of the process-wide connect rate, and
    /// reports how many succeeded. Stops early when the control thread asks.
    ///
    /// A connection's task is spawned at its slot and collected as soon as it is done, so only
    /// the handshakes under way hold their task's memory: with 10,000 connections at a low
    /// rate, that memory would otherwise outweigh the connections themselves.
    async fn connect_all(&mut self) -> (Vec<(u32, Client)>, SetupTimes) {
        let ns_per_connection = 1e9 / self.plan.connect_rate;
        let mut tally = ConnectTally { conns: Vec::with_capacity(self.connections.len()), times: Vec::new(), failures: BTreeMap::new(), first_error: None };
        let mut pending = std::collections::VecDeque::new();
        let mut stop_rx = self.stop.clone();
        let mut stopped = false;
        let (open_loop, engine, mut size) = (self.plan.is_open_loop(), self.plan.engine, self.plan.size);
        if let Some(f) = &self.foreign {
            // Read buffers are sized for the replies; a reply to a template is of its order
            // (JSON-RPC's carries the params back), so a run's replies never grow them.
            size = size.max(2 * f.template.max_len() as u64);
        }
        let batch = zero_batch(&self.plan);
        // A connection ramp opens the rest of its places later, when it reaches them.
        let first = self.plan.first_connections();
        for &i in self.connections.iter().filter(|&&i| i < first) {
            let at = self.connect_start_ns + (f64::from(i) * ns_per_connection) as u64;
            tokio::select! {
                biased;
                _ = stop_rx.wait_for(|s| s.is_some()) => stopped = true,
                _ = tokio::time::sleep_until(instant_at(at)) => {}
            }
            if stopped {
                break;
            }
            let target = Arc::clone(&self.target);
            pending.push_back((
                i,
                tokio::task::spawn_local(async move {
                    match tokio::time::timeout(CONNECT_TIMEOUT, client::connect(engine, &target, size, open_loop, batch)).await {
                        Ok(r) => r,
                        Err(_) => Err(ConnectError::new("timeout", format!("connecting to {} (TCP, TLS and WebSocket handshake) timed out after {CONNECT_TIMEOUT:?}", target.addr))),
                    }
                }),
            ));
            while pending.front().is_some_and(|(_, h): &(u32, tokio::task::JoinHandle<_>)| h.is_finished()) {
                let (i, handle) = pending.pop_front().expect("checked");
                tally.add(i, handle.await);
            }
        }
        for (i, mut handle) in pending {
            if stopped {
                handle.abort();
                continue;
            }
            tokio::select! {
                biased;
                _ = stop_rx.wait_for(|s| s.is_some()) => {
                    stopped = true;
                    handle.abort();
                }
                r = &mut handle => tally.add(i, r),
            }
        }
        let ConnectTally { conns, times, failures, first_error } = tally;
        let _ = self.events.send(Event::Connected { worker: self.id, established: conns.len() as u32, failures, first_error });
        let mut setup = SetupTimes::default();
        for t in &times {
            setup.record(t);
        }
        (conns, setup)
    }

    /// Runs every connection to its end while the ticker hands over intervals; returns the
    /// thread's CPU use over the measured window.
    async fn run_connections(self, conns: Vec<(u32, Client)>, start: Start, mut setup: SetupTimes) -> WorkerReport {
        let timeline = start.timeline;
        // The open connections share the whole rate (see the module docs).
        let connection_ramp = start.connection_ramp;
        let send_mode = match self.plan.rate {
            Some(rate) => match (start.ramp, connection_ramp) {
                // Places keep their numbers in the whole load; buffers follow the whole's peak
                // rate over its fewest open (the most rate each).
                (Some(ramp), Some(cr)) => SendMode::Open { rate: ramp.peak_rate(), connections: cr.fewest().max(1), span: None, ramp: Some(ramp) },
                // A ramp runs the warm-up at `rate`, then its stages; buffers follow this
                // process's part of its peak (rates are linear between stages).
                (ramp, _) => {
                    let peak = self.plan.stages.iter().map(|s| s.rate).fold(rate, f64::max);
                    SendMode::Open { rate: peak, connections: start.established.max(1), span: start.span, ramp }
                }
            },
            None => SendMode::Closed { in_flight: self.plan.in_flight },
        };
        // A shard's place `j` of a connection ramp is the whole load's place `shard.global_index(j)`.
        let place = |j: u32| start.shard.map_or(j, |s| s.global_index(j) as u32);
        // A connection ramp runs every place of the worker, open or not yet; otherwise the
        // connections that opened, numbered afresh.
        let places: Vec<(u32, Option<Client>)> = match connection_ramp {
            Some(_) => {
                let mut conns = conns.into_iter().peekable();
                self.connections.iter().map(|&i| (i, conns.next_if(|(j, _)| *j == i).map(|(_, c)| c))).collect()
            }
            None => conns.into_iter().map(|(i, c)| (i, Some(c))).collect(),
        };
        let open_now = places.iter().filter(|(_, c)| c.is_some()).count();
        let mut recorder = Recorder::with_spares(self.id, crate::recorder::spare_sets_for(timeline.interval_ns)).with_slots(places.len(), open_now);
        recorder.begin(timeline.measured_start_ns);
        let first_index = start.first_index.get(self.id).copied().unwrap_or(0);
        // Asked for, or automatic: a worker with dense deadlines coalesces its timer's firings
        // (see `SendClock::new`); one that spins wants each deadline to the microsecond.
        let worker_rate = match send_mode {
            SendMode::Open { rate, connections, .. } => rate * open_now as f64 / f64::from(connections),
            SendMode::Closed { .. } => 0.0,
        };
        let coalesce_ns = match self.plan.coalesce {
            wsbench_core::plan::Coalesce::Every(d) => duration_ns(d),
            wsbench_core::plan::Coalesce::Auto if self.plan.spin.is_zero() && worker_rate > crate::pacer::COALESCE_ABOVE_RATE => crate::pacer::COALESCE_NS,
            wsbench_core::plan::Coalesce::Auto => 0,
        };
        let clock = match SendClock::new(places.len(), duration_ns(self.plan.spin), coalesce_ns) {
            Ok(c) => c,
            Err(e) => {
                // Without a timer nothing can be paced: count every connection as dropped.
                for _ in places.iter().filter(|(_, c)| c.is_some()) {
                    let _ = self.events.send(Event::Dropped(format!("cannot create a timerfd: {e}")));
                }
                recorder.error();
                let end = window_end(&timeline, *self.stop.borrow());
                let _ = self.collector.send(recorder.finish(end.max(timeline.measured_start_ns)));
                return WorkerReport { setup, ..WorkerReport::default() };
            }
        };
        // A coalesced firing may come up to its period (and a wake-up) after the window's end
        // for deadlines before it: those messages still leave, late by design, and count.
        let timeline = if coalesce_ns > 0 {
            Timeline { send_grace_ns: coalesce_ns + (wsbench_core::warning::SEND_LAG_P99_LIMIT_US * 1_000.0) as u64, ..timeline }
        } else {
            timeline
        };
        let shared = Rc::new(ConnShared {
            timeline,
            size: self.plan.size as usize,
            mode: self.plan.mode,
            send_mode,
            recorder: std::cell::RefCell::new(recorder),
            filler: crate::connection::Filler::new(self.plan.size as usize),
            clock,
            stop: self.stop.clone(),
            on_drop: Box::new({
                let events = self.events.clone();
                // The report is lost only when the control thread is gone, and then nobody asks.
                move |cause| drop(events.send(Event::Dropped(cause)))
            }),
            allocations_at_first_finish: std::cell::Cell::new(None),
            first_message: std::cell::RefCell::new(std::mem::replace(&mut setup.first_message, wsbench_core::hist::new_histogram())),
            foreign: self.foreign.clone(),
            compression: std::cell::Cell::new(Default::default()),
            churn: self.plan.churn,
            churn_drain_ns: duration_ns(self.plan.drain_timeout),
            target: Arc::clone(&self.target),
            churn_tally: Default::default(),
            churn_allocations: std::cell::Cell::new(0),
            batch: zero_batch(&self.plan),
            connection_ramp,
            rx_kernel: self.plan.rx_timestamps == wsbench_core::plan::RxTimestamps::Kernel,
            rx: crate::rxstamp::RxClock::new(places.len()),
        });
        // Places the ramp opens at the start (numbered in the whole load).
        let first_connections = connection_ramp.map_or(0, |cr| cr.segment(0).open);
        let (engine, open_loop) = (self.plan.engine, self.plan.is_open_loop());
        let tasks: Vec<_> = places
            .into_iter()
            .enumerate()
            .map(|(slot, (i, client))| {
                let shared = shared.clone();
                let index = if connection_ramp.is_some() { place(i) } else { first_index + slot as u32 };
                tokio::task::spawn_local(async move {
                    let end = match client {
                        Some(ws) => ws.run(index, slot, &shared).await,
                        // A place of the ramp's first count that failed to open: counted then.
                        None if index < first_connections => return ConnEnd::Retired,
                        // Boxed: its connect would otherwise take room in every connection's
                        // task for the whole run (about 5 KiB each at 10,000 connections).
                        None => Box::pin(open_later(engine, open_loop, index, slot, &shared)).await,
                    };
                    if end != ConnEnd::Retired {
                        connection_closed(&shared);
                    }
                    end
                })
            })
            .collect();

        let mut cpu = CpuWindow::default();
        let all_done = async {
            for t in tasks {
                // A panicked connection task ends only that connection; count it as dropped.
                if let Err(e) = t.await {
                    shared.recorder.borrow_mut().error();
                    connection_closed(&shared);
                    let _ = self.events.send(Event::Dropped(format!("connection task failed: {e}")));
                }
            }
        };
        {
            let ticker = ticker(&shared, &self.collector, &self.recycled, &mut cpu);
            tokio::pin!(ticker);
            // The clock is polled here, in the worker's own future, not in a task of its own:
            // a firing wakes this future, which wakes the connections due, and the LocalSet
            // polls them in the same turn (a task would add a wake-up and a poll per firing).
            let clock = shared.clock.run();
            tokio::pin!(clock);
            tokio::select! {
                biased;
                // A timerfd that fails leaves every connection without deadlines: nothing can
                // end the run properly, so the worker fails loudly (a panicked worker ends the
                // run with its message).
                e = &mut clock => panic!("worker {}: the send timer (timerfd) failed: {e}", self.id),
                () = wake_on_stop(&shared) => unreachable!("never ends"),
                _ = all_done => {}
                _ = &mut ticker => unreachable!("the ticker never ends"),
            }
            // Connections can end before the window does: open-loop ones once their last message
            // is answered, dropped ones at any time. The window still lasts until its planned
            // end or a stop, and the ticker keeps handing over (empty) intervals meanwhile, so
            // the collector never waits for this worker.
            let mut stop_rx = self.stop.clone();
            tokio::select! {
                _ = wait_until(&mut stop_rx, timeline.measured_end_ns) => {}
                _ = &mut ticker => unreachable!("the ticker never ends"),
            }
        }

        let end = window_end(&timeline, *self.stop.borrow());
        cpu.end(shared.hot_allocations());
        while let Ok(set) = self.recycled.try_recv() {
            shared.recorder.borrow_mut().give_back(set);
        }
        let last = shared.recorder.borrow_mut().finish(end);
        let _ = self.collector.send(last);
        setup.first_message = shared.first_message.replace(wsbench_core::hist::new_histogram());
        setup.compression.add(&shared.compression.get());
        let mut churn = shared.churn_tally.take();
        churn.allocations = shared.churn_allocations.get();
        // Replacements were opened under load: their setup times join the others'.
        setup.add(&churn.setup);
        let rx = (shared.rx.counts.get(), shared.rx.fallback.get());
        WorkerReport { cpu_pct: cpu.pct(), allocations: cpu.allocations(shared.allocations_at_first_finish.get()), setup, churn, rx }
    }
}

/// The zero-alloc engine's batch for `plan`: buffers follow the peak rate.
fn zero_batch(plan: &LoadPlan) -> usize {
    let peak = plan.rate.map(|r| plan.stages.iter().map(|s| s.rate).fold(r, f64::max));
    // A connection ramp's rate is shared by the fewest connections at some point.
    let fewest = plan.stages.iter().filter_map(|s| s.connections).fold(plan.first_connections(), u32::min);
    crate::zero::expected_batch(peak, fewest, plan.in_flight)
}

/// What the connect phase of a worker came to.
struct ConnectTally {
    conns: Vec<(u32, Client)>,
    /// What opening each of `conns` took.
    times: Vec<ConnectTimes>,
    failures: BTreeMap<String, u32>,
    first_error: Option<String>,
}

impl ConnectTally {
    fn add(&mut self, i: u32, r: Result<Result<(Client, ConnectTimes), ConnectError>, tokio::task::JoinError>) {
        match r {
            Ok(Ok((ws, times))) => {
                self.conns.push((i, ws));
                self.times.push(times);
            }
            Ok(Err(e)) => {
                *self.failures.entry(e.cause).or_default() += 1;
                self.first_error.get_or_insert(e.detail);
            }
            Err(e) => {
                *self.failures.entry("connection task failed".into()).or_default() += 1;
                self.first_error.get_or_insert(format!("connection task failed: {e}"));
            }
        }
    }
}

/// Tasks that yield at once to grow the scheduler's deferred wake-up list: more than a
/// `LocalSet` polls in one turn (61 in tokio 1.x).
const DEFER_WARMUP_TASKS: usize = 64;

/// Grows the runtime's list of deferred wake-ups to its largest size now, before the run.
///
/// tokio wakes a task that used up its cooperative budget (or yielded) only at the scheduler's
/// next turn, through a `Vec` of wakers that keeps its capacity between turns. It grows the
/// first time more tasks than ever defer in one turn, which in open loop is the first backlog
/// after a stall: an allocation in the measured window. One turn polls at most 61 tasks of a
/// `LocalSet`, so that many yielding at once grows the list for good.
async fn grow_defer_list() {
    let tasks: Vec<_> = (0..DEFER_WARMUP_TASKS).map(|_| tokio::task::spawn_local(tokio::task::yield_now())).collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Wakes every connection once a stop is requested (or the control thread is gone): they look
/// for it only when they run (see [`crate::session::Turns`]). Never returns.
async fn wake_on_stop(shared: &ConnShared) {
    let mut stop_rx = shared.stop.clone();
    let _ = stop_rx.wait_for(|s| s.is_some()).await;
    shared.clock.wake_all();
    std::future::pending::<()>().await;
}

/// A connection ramp's place that is closed when the run starts: opened when the ramp
/// reaches it (counted as a replacement, its allocations apart), then run like any other.
async fn open_later(engine: wsbench_core::plan::Engine, open_loop: bool, index: u32, slot: usize, shared: &ConnShared) -> ConnEnd {
    let Some(at) = shared.connection_ramp.and_then(|cr| cr.next_open(0, index).map(|s| cr.segment(s).start_ns)) else {
        return ConnEnd::Retired;
    };
    let opened = crate::churn::counted(&shared.churn_allocations, async {
        if !crate::churn::wait_to_open(shared, at).await {
            return None;
        }
        let r = tokio::time::timeout(CONNECT_TIMEOUT, client::connect(engine, &shared.target, shared.size as u64, open_loop, shared.batch)).await;
        let now = now_ns();
        let mut tally = shared.churn_tally.borrow_mut();
        Some(match r {
            Ok(Ok((client, times))) => {
                tally.opened(&times, now >= shared.timeline.measured_start_ns && now < window_end(&shared.timeline, *shared.stop.borrow()));
                Ok(client)
            }
            Ok(Err(e)) => {
                tally.failed(e.cause.clone());
                Err(format!("connection opened by the ramp failed: {}", e.cause))
            }
            Err(_) => {
                tally.failed("timeout".into());
                Err("connection opened by the ramp failed: timeout".into())
            }
        })
    })
    .await;
    match opened {
        None => ConnEnd::Retired,
        // Its buffers are made as it starts: part of opening it, counted with it.
        Some(Ok(client)) => crate::churn::counted_start(&shared.churn_allocations, || client.run(index, slot, shared)).await,
        Some(Err(cause)) => {
            shared.recorder.borrow_mut().error();
            (shared.on_drop)(cause.clone());
            ConnEnd::Dropped(cause)
        }
    }
}

/// Tells the recorder a connection ended, and whether the measured window was still open.
pub(crate) fn connection_closed(shared: &ConnShared) {
    let in_window = now_ns() < window_end(&shared.timeline, *shared.stop.borrow());
    shared.recorder.borrow_mut().closed(in_window);
}

/// End of the measured window: as planned, or when a stop was requested.
pub fn window_end(timeline: &Timeline, stop: Option<Stop>) -> u64 {
    stop.map_or(timeline.measured_end_ns, |s| s.at_ns.min(timeline.measured_end_ns))
}

/// Hands the worker's intervals to the collector at every whole second of the measured window
/// and reads the thread's CPU clock and allocation count at the window's start and end. The
/// last interval (which also holds echoes of the drain) is handed over by the worker when its
/// connections are done. Never returns.
async fn ticker(shared: &ConnShared, collector: &std_mpsc::SyncSender<IntervalSet>, recycled: &std_mpsc::Receiver<IntervalSet>, cpu: &mut CpuWindow) {
    let tl = shared.timeline;
    let mut stop_rx = shared.stop.clone();
    if wait_until(&mut stop_rx, tl.measured_start_ns).await {
        cpu.start(shared.hot_allocations());
        let mut k = 0;
        while tl.interval_end(k) < tl.measured_end_ns && wait_until(&mut stop_rx, tl.interval_end(k)).await {
            let mut rec = shared.recorder.borrow_mut();
            while let Ok(set) = recycled.try_recv() {
                rec.give_back(set);
            }
            let _ = collector.send(rec.rotate(tl.interval_end(k)));
            k += 1;
        }
        // At the window's end, or at once when it was cut short.
        wait_until(&mut stop_rx, tl.measured_end_ns).await;
        cpu.end(shared.hot_allocations());
    }
    std::future::pending::<()>().await;
}

/// Sleeps until the monotonic instant `t`; false when a stop was requested first (or the control
/// thread is gone).
async fn wait_until(stop_rx: &mut watch::Receiver<Option<Stop>>, t: u64) -> bool {
    tokio::select! {
        biased;
        _ = stop_rx.wait_for(|s| s.is_some()) => false,
        _ = tokio::time::sleep_until(instant_at(t)) => true,
    }
}

/// The worker thread's CPU clock and allocation count at the start and end of the measured
/// window. The allocation count is this thread's own ([`wsbench_core::alloc::thread_allocations`]), so the
/// collector's once-per-second file writing is not mistaken for the hot path's.
#[derive(Debug, Default)]
struct CpuWindow {
    start: Option<(u64, u64, u64)>,
    end: Option<(u64, u64, u64)>,
}

impl CpuWindow {
    /// `allocations` is the thread's count less what replacing connections made
    /// ([`ConnShared::hot_allocations`]).
    fn reading(allocations: u64) -> (u64, u64, u64) {
        (now_ns(), thread_cpu_ns(), allocations)
    }

    fn start(&mut self, allocations: u64) {
        self.start = Some(Self::reading(allocations));
    }

    /// Takes the end reading, once: the clocks and the count are read together, so a window
    /// cut short is measured up to when the worker noticed.
    fn end(&mut self, allocations: u64) {
        if self.start.is_some() && self.end.is_none() {
            self.end = Some(Self::reading(allocations));
        }
    }

    fn pct(&self) -> Option<f64> {
        let ((w0, c0, _), (w1, c1, _)) = (self.start?, self.end?);
        (w1 > w0).then(|| c1.saturating_sub(c0) as f64 * 100.0 / (w1 - w0) as f64)
    }

    /// Allocations from the window's start to its end, or to `first_finish` (the count when
    /// the first connection finished, before closing) if that came first: connections finish
    /// when their share is sent and answered, which the window's end timer may notice later.
    fn allocations(&self, first_finish: Option<u64>) -> Option<u64> {
        let ((_, _, a0), (_, _, a1)) = (self.start?, self.end?);
        Some(a1.min(first_finish.unwrap_or(u64::MAX)).saturating_sub(a0))
    }
}

/// The tokio instant of a monotonic timestamp (both read `CLOCK_MONOTONIC`).
pub fn instant_at(ns: u64) -> tokio::time::Instant {
    let (now, now_i) = (now_ns(), tokio::time::Instant::now());
    if ns >= now { now_i + Duration::from_nanos(ns - now) } else { now_i.checked_sub(Duration::from_nanos(now - ns)).unwrap_or(now_i) }
}

/// Real-time priority of the worker threads with `--realtime`: the lowest but one, above every
/// ordinary thread. Workers sleep between messages, so they wake on time without taking a core.
const REALTIME_PRIORITY: libc::c_int = 2;

/// Puts a worker thread under `SCHED_FIFO`.
fn set_realtime(handle: &JoinHandle<WorkerReport>) -> std::io::Result<()> {
    use std::os::unix::thread::JoinHandleExt;
    let param = libc::sched_param { sched_priority: REALTIME_PRIORITY };
    // SAFETY: the pthread is alive (joinable, not joined) and `param` is a valid sched_param.
    let rc = unsafe { libc::pthread_setschedparam(handle.as_pthread_t(), libc::SCHED_FIFO, &param) };
    if rc != 0 {
        let e = std::io::Error::from_raw_os_error(rc);
        return Err(std::io::Error::new(e.kind(), format!("--realtime: cannot put worker threads under SCHED_FIFO ({e}); run as root or with CAP_SYS_NICE, or drop --realtime")));
    }
    Ok(())
}

/// Raises the soft limit of open files to the hard limit: every connection costs a descriptor
/// and the usual soft limit of 1024 stops at ~1,000 connections.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid, writable struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_connections_are_numbered_without_gaps() {
        let tl = Timeline::new(0, Duration::ZERO, Duration::from_secs(1), Duration::ZERO);
        let s = Start::new(tl, &[3, 0, 2]);
        assert_eq!((s.established, &*s.first_index), (5, &[0, 3, 3][..]));
    }

    #[test]
    fn window_ends_at_the_earlier_of_plan_and_stop() {
        let tl = Timeline::new(0, Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(window_end(&tl, None), tl.measured_end_ns);
        assert_eq!(window_end(&tl, Some(Stop { at_ns: 1_500_000_000, drain_until_ns: 0 })), 1_500_000_000);
        assert_eq!(window_end(&tl, Some(Stop { at_ns: u64::MAX, drain_until_ns: 0 })), tl.measured_end_ns);
    }

    #[test]
    fn cpu_window_needs_both_readings() {
        let mut c = CpuWindow::default();
        c.end(0);
        assert_eq!(c.pct(), None, "no start, no figure");
        c.start(0);
        let t0 = now_ns();
        while now_ns() - t0 < 5_000_000 {
            std::hint::black_box(0);
        }
        c.end(0);
        let pct = c.pct().unwrap();
        assert!(pct > 10.0 && pct <= 110.0, "busy loop measured {pct} %");
    }
}
