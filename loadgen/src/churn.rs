//! Connection churn's tally: what replacing connections took and how the replaced ones closed.
//! A worker keeps one ([`crate::connection::ConnShared::churn_tally`]); the process adds them
//! into `connections.churn` of the summary. Nothing here is on the per-message path.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::{poll_fn, Future};

use wsbench_core::result::ChurnReport;

use crate::client::ConnectTimes;
use crate::setup::SetupTimes;

/// How one closing handshake of a replaced connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    /// The server answered with this close code (`None`: a close frame without a code).
    Replied(Option<u16>),
    /// The connection ended with no close frame from the server.
    NoReply,
    /// No reply within the bound.
    TimedOut(std::time::Duration),
    /// The close failed with an I/O or protocol error, in words.
    Failed(String),
}

impl CloseOutcome {
    /// Clean: the server answered our 1000 with its own 1000.
    pub fn is_clean(&self) -> bool {
        *self == CloseOutcome::Replied(Some(1000))
    }

    /// The outcome as `summary.json` counts it.
    pub fn describe(&self) -> String {
        match self {
            CloseOutcome::Replied(code) => crate::connection::describe_close_code(*code),
            CloseOutcome::NoReply => "closed without a close reply".into(),
            CloseOutcome::TimedOut(d) => format!("no close reply within {}", wsbench_core::units::format_duration(*d)),
            CloseOutcome::Failed(e) => e.clone(),
        }
    }
}

/// Runs the future `make` returns, adding to `count` the allocations made building it and in
/// its first poll: a connection's setup (its buffers, its session's ring) when a connection
/// ramp opens its place mid-run. The rest of its life is the per-message path, not counted here.
pub async fn counted_start<F: Future>(count: &Cell<u64>, make: impl FnOnce() -> F) -> F::Output {
    let before = wsbench_core::alloc::thread_allocations();
    let mut fut = std::pin::pin!(make());
    let mut first = true;
    poll_fn(|cx| {
        let r = fut.as_mut().poll(cx);
        if std::mem::take(&mut first) {
            count.set(count.get() + wsbench_core::alloc::thread_allocations().saturating_sub(before));
        }
        r
    })
    .await
}

/// Drops a connection a ramp retired, adding the allocations that takes to `count`: tokio
/// queues a dropped socket's registration for release, in a list it allocates afresh.
pub fn counted_drop<T>(count: &Cell<u64>, value: T) {
    let before = wsbench_core::alloc::thread_allocations();
    drop(value);
    count.set(count.get() + wsbench_core::alloc::thread_allocations().saturating_sub(before));
}

/// Between closing a place's connection and opening the next one: churn opens it at once
/// (`reopen_at` `None`); a connection ramp that closed the place counts it closed and waits
/// until the ramp reaches it again. False when the place stays closed: never reopened, or the
/// run stops or its window ends first.
pub async fn until_reopen(shared: &crate::connection::ConnShared, reopen_at: Option<u64>) -> bool {
    let Some(at) = reopen_at else { return true };
    crate::fleet::connection_closed(shared);
    wait_to_open(shared, at).await
}

/// Waits until `at` for a connection ramp to open a place; false when the run stops or the
/// measured window ends first. The place counts as open from then on.
pub async fn wait_to_open(shared: &crate::connection::ConnShared, at: u64) -> bool {
    if at >= crate::fleet::window_end(&shared.timeline, *shared.stop.borrow()) {
        return false;
    }
    let mut stop = shared.stop.clone();
    let reached = tokio::select! {
        biased;
        _ = stop.wait_for(|s| s.is_some()) => false,
        () = tokio::time::sleep_until(crate::fleet::instant_at(at)) => true,
    };
    if reached {
        shared.recorder.borrow_mut().opened();
    }
    reached
}

/// One worker's churn so far.
#[derive(Debug, Clone, Default)]
pub struct ChurnTally {
    /// Setup times of the replacements (added to the process's setup histograms at the end).
    pub setup: SetupTimes,
    pub opened: u64,
    pub opened_in_window: u64,
    pub failures: BTreeMap<String, u32>,
    pub closes: BTreeMap<String, u64>,
    pub clean: u64,
    pub unclean: u64,
    /// Heap allocations made while replacing connections (see [`counted`]); kept apart from the
    /// per-message figure, which must stay at 0.
    pub allocations: u64,
}

/// Runs `fut`, adding the allocations this thread makes while polling it to `count`.
///
/// A replacement runs between the worker's other connections: counting only inside its own
/// polls leaves their per-message allocations where they belong, in the hot path's figure.
pub async fn counted<F: Future>(count: &Cell<u64>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    poll_fn(|cx| {
        let before = wsbench_core::alloc::thread_allocations();
        let r = fut.as_mut().poll(cx);
        count.set(count.get() + wsbench_core::alloc::thread_allocations().saturating_sub(before));
        r
    })
    .await
}

impl ChurnTally {
    pub fn closed(&mut self, outcome: &CloseOutcome) {
        *self.closes.entry(outcome.describe()).or_default() += 1;
        if outcome.is_clean() {
            self.clean += 1;
        } else {
            self.unclean += 1;
        }
    }

    pub fn opened(&mut self, times: &ConnectTimes, in_window: bool) {
        self.setup.record(times);
        self.opened += 1;
        self.opened_in_window += u64::from(in_window);
    }

    pub fn failed(&mut self, cause: String) {
        *self.failures.entry(cause).or_default() += 1;
    }

    /// Adds another worker's tally.
    pub fn add(&mut self, o: &ChurnTally) {
        self.setup.add(&o.setup);
        self.opened += o.opened;
        self.opened_in_window += o.opened_in_window;
        self.clean += o.clean;
        self.unclean += o.unclean;
        self.allocations += o.allocations;
        for (k, n) in &o.failures {
            *self.failures.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &o.closes {
            *self.closes.entry(k.clone()).or_default() += n;
        }
    }

    /// The summary's report over a measured window of `window_s` seconds; `counting` says
    /// whether this process counts allocations at all.
    pub fn report(&self, window_s: f64, counting: bool) -> ChurnReport {
        let attempts = self.opened + self.failures.values().map(|&n| u64::from(n)).sum::<u64>();
        ChurnReport {
            allocations_per_replacement: (counting && attempts > 0).then(|| self.allocations as f64 / attempts as f64),
            opened: self.opened,
            opened_in_window: self.opened_in_window,
            opened_per_s: if window_s > 0.0 { self.opened_in_window as f64 / window_s } else { 0.0 },
            failures: self.failures.clone(),
            closes: self.closes.clone(),
            clean: self.clean,
            unclean: self.unclean,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_1000_reply_is_clean() {
        let mut t = ChurnTally::default();
        for o in [CloseOutcome::Replied(Some(1000)), CloseOutcome::Replied(Some(1001)), CloseOutcome::NoReply, CloseOutcome::TimedOut(std::time::Duration::from_secs(1))] {
            t.closed(&o);
        }
        assert_eq!((t.clean, t.unclean), (1, 3));
        assert_eq!(t.closes.get("close 1000 normal closure"), Some(&1));
        assert_eq!(t.closes.get("no close reply within 1s"), Some(&1));
        let r = t.report(2.0, false);
        assert_eq!(r.opened_per_s, 0.0);
    }
}
