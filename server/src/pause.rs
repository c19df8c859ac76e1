//! Emulated stop-the-world pauses, the way a garbage collector stops a managed runtime.
//!
//! # Model
//!
//! A collector stops every mutator thread at its next *safepoint* and lets them all go when the
//! collection ends. Here a dedicated ticker thread ([`PauseTicker`]) plays the collector: at the
//! absolute times `start + k * every` (k = 1, 2, ...) it publishes a deadline `now + pause_for`
//! in [`PauseGate`], and clears it again when the deadline has passed. Every runtime thread
//! calls [`PauseGate::safepoint`]
//!
//! - when it wakes from the reactor (tokio's `on_thread_unpark` hook, installed by `run_main`),
//! - before it handles each received WebSocket message,
//! - after each accepted TCP connection and each parsed HTTP request head,
//!
//! and a safepoint inside a pause blocks the OS thread (`std::thread::sleep`) until the deadline.
//! A message that reaches the server at time t inside a pause [T, T+S] is therefore handled only
//! after T+S: a thread asleep in the reactor wakes for it and stops at the unpark safepoint, a
//! busy thread stops at its next message. Under an open-loop load a fraction S/P of messages
//! (P = `every`) arrives inside a pause, and their latency grows by a delay spread uniformly
//! between 0 and S, which is the signature of a collector in latency plots.
//!
//! Work already past its safepoint (for example flushing echoes computed just before the pause)
//! finishes first, as code between two safepoints does under a real collector. The ticker,
//! the histogram harvester and the signal handling are not runtime threads and keep running:
//! they are the measuring apparatus, not the system under test.
//!
//! The fast path of a safepoint is one relaxed atomic load that reads zero outside pauses; the
//! clock is read only inside one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wsbench_core::clock::now_ns;
use wsbench_core::plan::Pause;

use crate::metrics::Metrics;

/// Where runtime threads learn that a pause is on, and wait for it to end.
#[derive(Debug, Default)]
pub struct PauseGate {
    /// End of the current pause on the monotonic clock, or 0 outside pauses.
    until_ns: AtomicU64,
}

impl PauseGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks the calling OS thread until the current pause, if any, is over.
    #[inline]
    pub fn safepoint(&self) {
        let until = self.until_ns.load(Relaxed);
        if until != 0 {
            wait_until(until);
        }
    }

    /// True while a pause is on.
    pub fn is_paused(&self) -> bool {
        self.until_ns.load(Relaxed) != 0
    }

    /// Starts a pause that lasts until `until_ns` (monotonic clock).
    pub(crate) fn begin(&self, until_ns: u64) {
        // Zero means "no pause"; a deadline can only be zero on a clock that just started.
        self.until_ns.store(until_ns.max(1), Relaxed);
    }

    /// Ends the current pause; safepoints pass freely again.
    pub(crate) fn end(&self) {
        self.until_ns.store(0, Relaxed);
    }
}

#[cold]
fn wait_until(until_ns: u64) {
    // Bounded: each round sleeps the whole remainder, so this loops only on early wake-ups.
    loop {
        let now = now_ns();
        if now >= until_ns {
            return;
        }
        std::thread::sleep(Duration::from_nanos(until_ns - now));
    }
}

/// The first tick `start + k * every` (k >= 1) at or after `now`: ticks missed while the ticker
/// was late are skipped, never paid back as a burst of pauses.
pub fn next_tick(start_ns: u64, every_ns: u64, now_ns: u64) -> u64 {
    let every = every_ns.max(1);
    if now_ns <= start_ns {
        return start_ns + every;
    }
    let k = (now_ns - start_ns).div_ceil(every).max(1);
    start_ns.saturating_add(k.saturating_mul(every))
}

/// The collector stand-in: a thread that starts and ends pauses on schedule until stopped.
#[derive(Debug)]
pub struct PauseTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    gate: Arc<PauseGate>,
}

impl PauseTicker {
    /// Starts pausing `gate` on `pause`'s schedule, counting each pause in `metrics`.
    pub fn start(
        gate: Arc<PauseGate>,
        pause: Pause,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread_gate = Arc::clone(&gate);
        let thread = std::thread::Builder::new()
            .name("wsbench-pause".into())
            .spawn(move || tick(&thread_gate, pause, &metrics, &stopped))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
            gate,
        })
    }

    /// Stops the ticker and ends any pause in progress.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        // Dropping the sender wakes the ticker at once, wherever it sleeps.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                eprintln!("wsbench server: the pause ticker panicked");
            }
        }
        self.gate.end();
    }
}

impl Drop for PauseTicker {
    fn drop(&mut self) {
        self.shut();
    }
}

fn tick(gate: &PauseGate, pause: Pause, metrics: &Metrics, stopped: &mpsc::Receiver<()>) {
    let every = duration_ns(pause.every);
    let length = duration_ns(pause.pause_for);
    let start = now_ns();
    let mut last = start;
    loop {
        let at = next_tick(start, every, now_ns().max(last + 1));
        if sleep_until(stopped, at) {
            break;
        }
        // The pause lasts its full length from when it really began, even if we woke late.
        let begun = now_ns();
        gate.begin(begun + length);
        metrics.pause();
        let stop = sleep_until(stopped, begun + length);
        gate.end();
        if stop {
            break;
        }
        last = at;
    }
    gate.end();
}

/// Sleeps until `deadline_ns`; true when asked to stop instead. Shared by the background
/// threads (pause ticker, histogram harvester) that must wake on time and stop promptly.
pub(crate) fn sleep_until(stopped: &mpsc::Receiver<()>, deadline_ns: u64) -> bool {
    loop {
        let now = now_ns();
        if now >= deadline_ns {
            return false;
        }
        match stopped.recv_timeout(Duration::from_nanos(deadline_ns - now)) {
            Err(RecvTimeoutError::Timeout) => continue,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return true,
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_the_schedule_and_skip_missed_ones() {
        assert_eq!(next_tick(1000, 100, 0), 1100);
        assert_eq!(next_tick(1000, 100, 1000), 1100);
        assert_eq!(next_tick(1000, 100, 1001), 1100);
        assert_eq!(next_tick(1000, 100, 1100), 1100);
        assert_eq!(next_tick(1000, 100, 1101), 1200);
        assert_eq!(next_tick(1000, 100, 1550), 1600);
    }

    #[test]
    fn safepoint_passes_outside_a_pause() {
        let gate = PauseGate::new();
        assert!(!gate.is_paused());
        let t = now_ns();
        gate.safepoint();
        // Generous bound: it must not have slept for anything like a pause.
        assert!(now_ns() - t < 5_000_000);
    }

    #[test]
    fn safepoint_holds_a_thread_until_the_pause_ends() {
        let gate = Arc::new(PauseGate::new());
        let until = now_ns() + 20_000_000;
        gate.begin(until);
        let g = Arc::clone(&gate);
        let released_at = std::thread::spawn(move || {
            g.safepoint();
            now_ns()
        })
        .join()
        .unwrap();
        assert!(
            released_at >= until,
            "released {} ns early",
            until - released_at
        );
        gate.end();
        assert!(!gate.is_paused());
    }

    #[test]
    fn ticker_pauses_on_schedule_and_stops_cleanly() {
        let gate = Arc::new(PauseGate::new());
        let metrics = Arc::new(Metrics::default());
        let pause = Pause {
            every: Duration::from_millis(20),
            pause_for: Duration::from_millis(5),
        };
        let ticker = PauseTicker::start(Arc::clone(&gate), pause, Arc::clone(&metrics)).unwrap();
        // Wait (bounded) until at least two pauses have happened.
        let deadline = now_ns() + 5_000_000_000;
        while metrics.snapshot().pauses < 2 && now_ns() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        ticker.stop();
        assert!(metrics.snapshot().pauses >= 2);
        assert!(!gate.is_paused(), "stopping ends any pause in progress");
    }
}
