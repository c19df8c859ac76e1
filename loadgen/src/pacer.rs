//! Precise wake-ups for open-loop sending: one send clock per worker thread ([`SendClock`],
//! two Linux timerfds), polled by tokio.
//!
//! `tokio::time::sleep` rounds to the millisecond and wakes 0.6–1.5 ms late, which is 10–25× the
//! round trip being measured; a timerfd armed with an absolute `CLOCK_MONOTONIC` deadline and
//! registered through [`AsyncFd`] wakes within tens of microseconds. `CLOCK_MONOTONIC` is the
//! clock of [`wsbench_core::clock::now_ns`], so deadlines are the schedule's intended times as is.
//!
//! The clock only wakes the connections due; deciding what to send and recording how late the
//! wake-up was is the connection loop's business.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker};

use tokio::io::unix::AsyncFd;
use wsbench_core::clock::now_ns;

/// A one-shot timer that fires at an absolute monotonic instant.
///
/// A firing is seen through the descriptor's readiness alone, never read: tokio registers it
/// edge-triggered, so every expiry queues a new event whether or not the previous one was read,
/// and `timerfd_settime` clears what is left. That saves a `read` per firing; a readiness that
/// outlived a re-arm is told apart by the clock, not by the descriptor.
#[derive(Debug)]
pub struct Pacer {
    fd: AsyncFd<OwnedFd>,
    /// The instant armed last (0: none). Atomic only so a task holding a `Pacer` across an
    /// await stays `Send` (the fan-out publishers run on a multi-thread runtime); one owner
    /// sets and reads it.
    deadline: AtomicU64,
}

impl Pacer {
    /// Creates a disarmed timer. Must be called inside a tokio runtime with I/O enabled.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the returned descriptor is checked before it is owned.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the AsyncFd owns `fd`, so the descriptor stays open and the same for its whole life.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(Self { fd, deadline: AtomicU64::new(0) })
    }

    /// Arms the timer for the absolute monotonic instant `deadline_ns`, replacing any earlier
    /// deadline. A deadline in the past fires at once.
    pub fn set(&self, deadline_ns: u64) -> io::Result<()> {
        // An all-zero it_value would disarm the timer; an absolute time of 1 ns is long past.
        let deadline_ns = deadline_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t, tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long },
        };
        // SAFETY: the descriptor is a live timerfd and `spec` is a valid itimerspec.
        let rc = unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.deadline.store(deadline_ns, Relaxed);
        Ok(())
    }

    /// Ready once the descriptor has signalled since the last time this returned ready: the
    /// armed deadline has passed, or (rarely) an expiry from before a re-arm was seen late.
    /// Callers check the clock. Stores `cx`'s waker for the next firing.
    pub fn poll_fired(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.fd.poll_read_ready(cx) {
            Poll::Ready(Ok(mut guard)) => {
                guard.clear_ready();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Waits until the armed deadline has passed. Cancel-safe: a firing not yet seen stays
    /// signalled on the descriptor.
    pub async fn wait(&self) -> io::Result<()> {
        loop {
            std::future::poll_fn(|cx| self.poll_fired(cx)).await?;
            if now_ns() >= self.deadline.load(Relaxed) {
                return Ok(());
            }
        }
    }
}

/// The send timer of all connections of a worker thread.
///
/// A timer per connection costs a `timerfd_settime`, a `read` and an epoll wake-up for every
/// message. Here each connection registers its next deadline with the worker's clock; one driver
/// ([`SendClock::run`]) keeps the earliest deadline armed, and the next one on a second timerfd,
/// and when one fires, wakes every connection that is due, so one wake-up serves every message
/// due by then. Two, not one: a timer re-armed right after it fired is the earliest the kernel
/// holds, and arming the earliest timer reprograms the CPU's timer hardware (a VM exit on a
/// virtual machine), on top of the reprogramming the firing itself does. Re-arming the fired
/// timer for the deadline after the next one, while the other holds the next, leaves that to the
/// firing (at 20,000 msgs/s: about 25 % less CPU per message).
/// With `spin_ns`, the timers are armed that much before the deadline and the rest is spun,
/// which trades CPU for punctuality.
///
/// Registering and waking allocate nothing: the queue of deadlines is sized for the worker's
/// connections up front and purged of superseded entries when it is full.
/// The second timer is armed only for a deadline at least this far behind the first: about a
/// wake-up's latency here (14–28 µs at p50), below which the firing for the first finds the
/// second due as well.
const SECOND_TIMER_GAP_NS: u64 = 25_000;

/// A read waiting for a firing ([`SendClock::read_from`]) waits this long at most: a timer
/// is armed for it only when no firing comes sooner.
pub const READ_WITHIN_NS: u64 = 1_000_000;

/// A worker whose deadlines come more often than this (per second) coalesces its firings.
pub const COALESCE_ABOVE_RATE: f64 = 50_000.0;
/// Least time between two firings of a coalescing clock: at 100,000 msgs/s a firing serves
/// about 20 messages instead of 5 or 6.
pub const COALESCE_NS: u64 = 200_000;

pub struct SendClock {
    pacers: [Pacer; 2],
    spin_ns: u64,
    /// Least time between two firings (0: none, each deadline is armed as it is).
    coalesce_ns: u64,
    state: RefCell<ClockState>,
}

struct ClockState {
    /// Deadlines registered, earliest first; an entry whose slot has since registered another
    /// deadline (or been woken) is stale and skipped.
    queue: BinaryHeap<Reverse<(u64, u32)>>,
    /// Per connection slot: its registered deadline, 0 when none.
    deadline: Vec<u64>,
    wakers: Vec<Option<Waker>>,
    /// The instant each timerfd is armed for; 0 when it is not armed (or has fired).
    armed: [u64; 2],
    /// When the clock last fired and woke a connection (0: never).
    fired_at: u64,
    /// Reads that may wait for a firing that comes anyway (kernel receive timestamps): per
    /// slot the instant from which any firing should wake it (0: none), queued like deadlines,
    /// and whether a firing has (the slot's wait is then over).
    read_at: Vec<u64>,
    read_queue: BinaryHeap<Reverse<(u64, u32)>>,
    read_woken: Vec<bool>,
}

impl ClockState {
    /// Drops stale entries from the front; returns the earliest live deadline.
    fn earliest(&mut self) -> Option<u64> {
        while let Some(&Reverse((d, slot))) = self.queue.peek() {
            if self.deadline[slot as usize] == d {
                return Some(d);
            }
            self.queue.pop();
        }
        None
    }

    /// The earliest live read instant (see [`SendClock::read_from`]), dropping stale ones.
    fn earliest_read(&mut self) -> Option<u64> {
        while let Some(&Reverse((d, slot))) = self.read_queue.peek() {
            if self.read_at[slot as usize] == d {
                return Some(d);
            }
            self.read_queue.pop();
        }
        None
    }

    /// The earliest live deadline and the next later one, if any. Allocates nothing: the
    /// entries set aside to look behind the first are pushed back into the room they left.
    fn earliest_two(&mut self) -> (Option<u64>, Option<u64>) {
        let Some(first) = self.earliest() else { return (None, None) };
        // Several connections can share a deadline: look past at most a few of them.
        let mut aside = [Reverse((0u64, 0u32)); 8];
        let mut n = 0;
        while n < aside.len() && self.earliest() == Some(first) {
            aside[n] = self.queue.pop().expect("peeked");
            n += 1;
        }
        let second = self.earliest().filter(|&d| d != first);
        for e in &aside[..n] {
            self.queue.push(*e);
        }
        (Some(first), second)
    }
}

impl SendClock {
    /// A clock for connection slots `0..slots`. Must be called inside a tokio runtime with I/O.
    ///
    /// With `coalesce_ns` (not 0), a firing comes at least that long after the previous one,
    /// so each serves every message due in between. Arming a timer costs a `timerfd_settime`
    /// and a reprogramming of the timer hardware (a VM exit on a virtual machine) and the firing
    /// an interrupt: at 100,000 msgs/s with deadlines 10 µs apart, a firing every ~60 µs took a
    /// third of the worker's CPU and left it saturated and milliseconds behind its schedule.
    /// The messages so delayed show it in their send lag.
    pub fn new(slots: usize, spin_ns: u64, coalesce_ns: u64) -> io::Result<Self> {
        let state = ClockState {
            // Live entries never exceed the slots; the rest is room for stale ones between purges.
            queue: BinaryHeap::with_capacity(2 * slots + 16),
            deadline: vec![0; slots],
            wakers: vec![None; slots],
            armed: [0; 2],
            fired_at: 0,
            read_at: vec![0; slots],
            read_queue: BinaryHeap::with_capacity(2 * slots + 16),
            read_woken: vec![false; slots],
        };
        Ok(Self { pacers: [Pacer::new()?, Pacer::new()?], spin_ns, coalesce_ns, state: RefCell::new(state) })
    }

    /// Waits until the absolute monotonic instant `deadline_ns` on behalf of connection `slot`.
    /// Cancel-safe: a dropped wait leaves at most a stale entry behind.
    pub fn wait(&self, slot: usize, deadline_ns: u64) -> impl Future<Output = io::Result<()>> + '_ {
        std::future::poll_fn(move |cx| self.poll_wait(slot, deadline_ns, cx))
    }

    /// Asks that any firing from `read_at` on (0: none) also end connection `slot`'s next
    /// [`Self::wait`], as if its deadline had come: a connection with echoes to read (kernel
    /// receive timestamps) lets the next firing for another connection wake it. A timer is
    /// armed for the read only when no firing comes by `read_at` + [`READ_WITHIN_NS`].
    pub fn read_from(&self, slot: usize, read_at: u64) -> io::Result<()> {
        let mut guard = self.state.borrow_mut();
        let s = &mut *guard;
        if s.read_at[slot] == read_at {
            return Ok(());
        }
        s.read_at[slot] = read_at;
        if read_at == 0 {
            return Ok(());
        }
        if s.read_queue.len() == s.read_queue.capacity() {
            let live = &s.read_at;
            s.read_queue.retain(|&Reverse((d, k))| live[k as usize] == d);
        }
        s.read_queue.push(Reverse((read_at, slot as u32)));
        self.arm_if_earlier(s, read_at.saturating_add(READ_WITHIN_NS))
    }

    fn poll_wait(&self, slot: usize, deadline_ns: u64, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let due = now_ns() >= deadline_ns;
        let mut guard = self.state.borrow_mut();
        let s = &mut *guard;
        // A firing came for its read (see `read_from`), or its deadline came: either way the
        // connection reads now, so a flag left from the same firing must not end the next wait.
        if std::mem::take(&mut s.read_woken[slot]) || due {
            return Poll::Ready(Ok(()));
        }
        if s.deadline[slot] != deadline_ns {
            s.deadline[slot] = deadline_ns;
            if s.queue.len() == s.queue.capacity() {
                let live = &s.deadline;
                s.queue.retain(|&Reverse((d, k))| live[k as usize] == d);
            }
            s.queue.push(Reverse((deadline_ns, slot as u32)));
            let arm_at = self.arm_at(deadline_ns);
            self.arm_if_earlier(s, arm_at)?;
        }
        self.keep_waker(s, slot, cx)
    }

    /// Arms a timer for `arm_at` when it comes before what is armed: the earliest deadline is
    /// always armed, and with both timers armed, the two earliest. A later one is left to the
    /// firings.
    fn arm_if_earlier(&self, s: &mut ClockState, mut arm_at: u64) -> io::Result<()> {
        if self.coalesce_ns > 0 {
            arm_at = arm_at.max(s.fired_at.saturating_add(self.coalesce_ns));
        }
        let (k, bound) = match s.armed {
            // Coalescing uses one timer (see `fire`).
            [a, _] if self.coalesce_ns > 0 => (0, if a == 0 { u64::MAX } else { a }),
            [0, 0] => (0, u64::MAX),
            [a, 0] => (1, a),
            [0, b] => (0, b),
            [a, b] if a > b => (0, a),
            [_, b] => (1, b),
        };
        if arm_at < bound && !s.armed.contains(&arm_at) {
            self.pacers[k].set(arm_at)?;
            s.armed[k] = arm_at;
        }
        Ok(())
    }

    fn keep_waker(&self, s: &mut ClockState, slot: usize, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut s.wakers[slot] {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Never ready: keeps connection `slot`'s waker for [`Self::wake_all`] only, without a
    /// deadline (a transport waiting to write waits for a stop besides its I/O).
    pub fn wait_for_stop(&self, slot: usize) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let mut s = self.state.borrow_mut();
            // No deadline: an entry still queued for it is stale from now on.
            s.deadline[slot] = 0;
            match &mut s.wakers[slot] {
                Some(w) if w.will_wake(cx.waker()) => {}
                w => *w = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
    }

    /// Wakes every connection that waits on this clock, due or not (a stop was requested).
    pub fn wake_all(&self) {
        let mut s = self.state.borrow_mut();
        for w in &mut s.wakers {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
    }

    /// Fires the timer for everyone: wakes each connection whose deadline has come, then arms
    /// the timer for the next. Runs for the worker's whole life; returns only when the timerfd
    /// fails.
    pub async fn run(&self) -> io::Error {
        std::future::poll_fn(|cx| self.poll_run(cx)).await
    }

    /// [`Self::run`] as a poll function, for the worker's own loop: the worker polls its clock
    /// itself, so a firing wakes the worker and the connections it makes due, with no task of
    /// its own in between.
    pub fn poll_run(&self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let mut fired = false;
            for p in &self.pacers {
                match p.poll_fired(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(e),
                    Poll::Ready(Ok(())) => fired = true,
                }
            }
            if !fired {
                return Poll::Pending;
            }
            if let Err(e) = self.fire() {
                return Poll::Ready(e);
            }
        }
    }

    /// The instant to arm a timer for `deadline_ns`: early by the spin.
    fn arm_at(&self, deadline_ns: u64) -> u64 {
        deadline_ns.saturating_sub(self.spin_ns).max(1)
    }

    /// One firing: spins to the first deadline when armed early, wakes every connection due,
    /// and arms the timers for the next two deadlines. A firing with nothing due (seen late,
    /// after a re-arm) only re-arms.
    fn fire(&self) -> io::Result<()> {
        let mut guard = self.state.borrow_mut();
        let s = &mut *guard;
        if self.spin_ns > 0 {
            if let Some(first) = s.earliest() {
                // Armed early on purpose: spin the rest, never longer than asked.
                let until = first.min(now_ns() + self.spin_ns);
                while now_ns() < until {
                    std::hint::spin_loop();
                }
            }
        }
        let now = now_ns();
        while let Some(d) = s.earliest() {
            if d > now {
                break;
            }
            // Only a firing that serves someone counts (not one seen late, after a re-arm).
            s.fired_at = now;
            let Some(Reverse((_, slot))) = s.queue.pop() else { break };
            s.deadline[slot as usize] = 0;
            if let Some(w) = s.wakers[slot as usize].take() {
                w.wake();
            }
        }
        // Reads due ride on this firing.
        while let Some(&Reverse((d, slot))) = s.read_queue.peek() {
            if d > now {
                break;
            }
            s.read_queue.pop();
            let k = slot as usize;
            if s.read_at[k] == d {
                s.read_at[k] = 0;
                s.read_woken[k] = true;
                if let Some(w) = s.wakers[k].take() {
                    w.wake();
                }
            }
        }
        // Timers whose instant has passed have fired (or will, at once): they are free.
        for a in &mut s.armed {
            if *a <= now {
                *a = 0;
            }
        }
        // Reads still waiting bound the next firing too (rarely: a firing for a send comes first
        // at any useful rate).
        let read_by = s.earliest_read().map(|r| r.saturating_add(READ_WITHIN_NS));
        self.arm_for_deadlines(s, now)?;
        if let Some(by) = read_by {
            self.arm_if_earlier(s, by)?;
        }
        Ok(())
    }

    /// Arms the timers for the next deadlines, after a firing.
    fn arm_for_deadlines(&self, s: &mut ClockState, now: u64) -> io::Result<()> {
        if self.coalesce_ns > 0 {
            // One timer, for the earliest deadline but no sooner than `coalesce_ns` after this
            // firing: re-armed at most once per firing, so a second timer saves nothing.
            if let Some(first) = s.earliest() {
                let at = self.arm_at(first).max(now + self.coalesce_ns);
                if s.armed[0] != at {
                    self.pacers[0].set(at)?;
                    s.armed[0] = at;
                }
            }
            return Ok(());
        }
        let (first, second) = s.earliest_two();
        let Some(first) = first.map(|d| self.arm_at(d)) else { return Ok(()) };
        if !s.armed.contains(&first) {
            // Behind, starting, or after a change of plan: the earliest first, on a free timer
            // or else the later one.
            let k = match s.armed {
                [0, _] => 0,
                [_, 0] => 1,
                [a, b] if a > b => 0,
                _ => 1,
            };
            self.pacers[k].set(first)?;
            s.armed[k] = first;
        }
        // The next one too, on the timer that fired, unless it is so close behind the first
        // that the firing for the first will find it due as well (a worker behind its schedule
        // would pay a system call per firing for nothing).
        if let (Some(second), Some(k)) = (second.map(|d| self.arm_at(d)), s.armed.iter().position(|&a| a == 0)) {
            if second >= first.saturating_add(SECOND_TIMER_GAP_NS) {
                self.pacers[k].set(second)?;
                s.armed[k] = second;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn fires_at_the_deadline_not_before() {
        runtime().block_on(async {
            let p = Pacer::new().unwrap();
            for _ in 0..5 {
                let deadline = now_ns() + 2_000_000;
                p.set(deadline).unwrap();
                p.wait().await.unwrap();
                assert!(now_ns() >= deadline);
            }
        });
    }

    #[test]
    fn a_past_deadline_fires_at_once_and_rearming_replaces() {
        runtime().block_on(async {
            let p = Pacer::new().unwrap();
            p.set(now_ns() + 60_000_000_000).unwrap();
            // Re-armed to the past before the first deadline: must not wait a minute.
            p.set(1).unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(5), p.wait()).await.expect("fires").unwrap();
        });
    }

    #[test]
    fn an_expiry_seen_after_a_rearm_does_not_end_the_new_wait() {
        runtime().block_on(async {
            let p = Pacer::new().unwrap();
            p.set(now_ns() + 1_000_000).unwrap();
            // The first deadline expires unseen (the runtime is not polled), then is replaced.
            std::thread::sleep(std::time::Duration::from_millis(3));
            let deadline = now_ns() + 20_000_000;
            p.set(deadline).unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(5), p.wait()).await.expect("fires").unwrap();
            assert!(now_ns() >= deadline, "woke for the replaced deadline");
            // Never read, yet it fires again once re-armed.
            let deadline = now_ns() + 2_000_000;
            p.set(deadline).unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(5), p.wait()).await.expect("fires again").unwrap();
            assert!(now_ns() >= deadline);
        });
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn one_timer_wakes_each_connection_at_its_own_deadline_not_before() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async {
            let clock = Rc::new(SendClock::new(3, 0, 0).unwrap());
            let driver = tokio::task::spawn_local({
                let c = clock.clone();
                async move { c.run().await }
            });
            let t0 = now_ns();
            // Deadlines out of order, two of them re-registered earlier before they fire.
            let tasks: Vec<_> = [(0, 9_000_000u64), (1, 3_000_000), (2, 6_000_000)]
                .into_iter()
                .map(|(slot, after)| {
                    let c = clock.clone();
                    tokio::task::spawn_local(async move {
                        let deadline = t0 + after;
                        if slot != 1 {
                            // Registered late first, then moved earlier: the earlier one counts.
                            let _ = tokio::time::timeout(std::time::Duration::from_micros(100), c.wait(slot, deadline + 50_000_000)).await;
                        }
                        c.wait(slot, deadline).await.unwrap();
                        (slot, now_ns(), deadline)
                    })
                })
                .collect();
            let mut woke = Vec::new();
            for t in tasks {
                let (slot, at, deadline) = tokio::time::timeout(std::time::Duration::from_secs(5), t).await.expect("woken").unwrap();
                assert!(at >= deadline, "slot {slot} woke before its deadline");
                woke.push((at, slot));
            }
            woke.sort();
            assert_eq!(woke.iter().map(|w| w.1).collect::<Vec<_>>(), [1, 2, 0]);
            driver.abort();
        });
    }

    #[test]
    fn spinning_wakes_at_the_deadline_not_before() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async {
            let clock = Rc::new(SendClock::new(1, 200_000, 0).unwrap());
            let driver = tokio::task::spawn_local({
                let c = clock.clone();
                async move { c.run().await }
            });
            for _ in 0..5 {
                let deadline = now_ns() + 2_000_000;
                tokio::time::timeout(std::time::Duration::from_secs(5), clock.wait(0, deadline)).await.expect("woken").unwrap();
                assert!(now_ns() >= deadline);
            }
            driver.abort();
        });
    }

    #[test]
    fn the_two_earliest_deadlines_stay_armed() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async {
            let clock = Rc::new(SendClock::new(4, 0, 0).unwrap());
            let armed = |c: &SendClock| {
                let mut a = c.state.borrow().armed;
                a.sort_unstable();
                a
            };
            let waker = futures_util::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            let t = now_ns() + 60_000_000_000;
            for (slot, d) in [(0, t + 3), (1, t + 1), (2, t + 2)] {
                assert!(clock.poll_wait(slot, d, &mut cx).is_pending());
            }
            assert_eq!(armed(&clock), [t + 1, t + 2]);
            // An earlier one displaces the later of the two.
            assert!(clock.poll_wait(0, t, &mut cx).is_pending());
            assert_eq!(armed(&clock), [t, t + 1]);

            // After a firing, the fired timer is re-armed for the deadline after the next one.
            let driver = tokio::task::spawn_local({
                let c = clock.clone();
                async move { c.run().await }
            });
            let t0 = now_ns();
            let (a, b, c) = (t0 + 2_000_000, t0 + 40_000_000, t0 + 50_000_000);
            assert!(clock.poll_wait(1, b, &mut cx).is_pending());
            assert!(clock.poll_wait(2, c, &mut cx).is_pending());
            tokio::time::timeout(std::time::Duration::from_secs(5), clock.wait(3, a)).await.expect("woken").unwrap();
            // This future may see its deadline pass before the driver task has run.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            assert!(now_ns() < b, "the test needs the second deadline still ahead");
            assert_eq!(armed(&clock), [b, c]);
            driver.abort();
        });
    }

    #[test]
    fn a_deadline_close_behind_the_next_gets_no_timer_of_its_own() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async {
            let clock = Rc::new(SendClock::new(3, 0, 0).unwrap());
            let waker = futures_util::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            let driver = tokio::task::spawn_local({
                let c = clock.clone();
                async move { c.run().await }
            });
            let t0 = now_ns();
            let (a, b) = (t0 + 2_000_000, t0 + 40_000_000);
            assert!(clock.poll_wait(1, b, &mut cx).is_pending());
            assert!(clock.poll_wait(2, b + SECOND_TIMER_GAP_NS - 1, &mut cx).is_pending());
            tokio::time::timeout(std::time::Duration::from_secs(5), clock.wait(0, a)).await.expect("woken").unwrap();
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            assert!(now_ns() < b, "the test needs the next deadline still ahead");
            let mut armed = clock.state.borrow().armed;
            armed.sort_unstable();
            assert_eq!(armed, [0, b], "one timer for the two");
            driver.abort();
        });
    }

    #[test]
    fn a_coalescing_clock_fires_at_most_once_per_period_and_never_early() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async {
            let period = 30_000_000;
            let clock = Rc::new(SendClock::new(2, 0, period).unwrap());
            let driver = tokio::task::spawn_local({
                let c = clock.clone();
                async move { c.run().await }
            });
            let t0 = now_ns();
            let (a, b) = (t0 + 2_000_000, t0 + 12_000_000);
            // Both registered before either fires; woken only by the clock.
            let [first, second] = [(0, a), (1, b)].map(|(slot, deadline)| {
                let c = clock.clone();
                tokio::task::spawn_local(async move {
                    c.wait(slot, deadline).await.unwrap();
                    (now_ns(), c.state.borrow().fired_at)
                })
            });
            let (woke, fired) = tokio::time::timeout(std::time::Duration::from_secs(5), first).await.expect("woken").unwrap();
            assert!(woke >= a && fired >= a, "woke the first before its deadline");
            let (woke, _) = tokio::time::timeout(std::time::Duration::from_secs(5), second).await.expect("woken").unwrap();
            // Due 10 ms after the first, served by the next firing, a period after the first;
            // unless the first firing itself came after the second deadline (a machine so busy
            // the timer woke over 10 ms late), when one firing rightly serves both.
            assert!(woke >= fired + period || fired >= b, "fired again {} ns after the last firing", woke - fired);
            driver.abort();
        });
    }

    #[test]
    fn stale_entries_are_purged_without_growing_the_queue() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let clock = SendClock::new(2, 0, 0).unwrap();
            let cap = clock.state.borrow().queue.capacity();
            let far = now_ns() + 60_000_000_000;
            let waker = futures_util::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            // Many re-registrations of two slots: far more entries than the queue holds.
            for k in 0..(10 * cap as u64) {
                assert!(clock.poll_wait((k % 2) as usize, far - k, &mut cx).is_pending());
            }
            let mut s = clock.state.borrow_mut();
            assert_eq!(s.queue.capacity(), cap, "the queue never reallocates");
            assert_eq!(s.earliest(), Some(far - (10 * cap as u64 - 1)));
        });
    }
}
