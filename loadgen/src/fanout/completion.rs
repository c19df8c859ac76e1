//! Broadcast completion across every subscriber of one load-generator process, lock-free and
//! bounded.
//!
//! A broadcast is complete when the last member of its room has received it; its completion
//! latency is the largest of the members' latencies (all measured from the same intended send
//! time). Each publisher owns a ring of [`Slot`]s indexed by its message number: the publisher
//! arms a slot (expected receivers, intended time) before sending, and each subscriber that
//! receives the message counts itself off and raises the slot's maximum with one
//! compare-and-swap; the one that takes the count to zero records the completion. Nothing is
//! allocated per message.
//!
//! The bound: a ring holds `window` messages per publisher. A slot still incomplete when its
//! publisher needs it again is given up at the age it reached (a lower bound, counted in
//! `incomplete`); deliveries of it that come later are `untracked` (still counted as
//! deliveries, never as completions). The window is sized from the publisher's rate and the
//! drain timeout, so this only happens when messages are older than the run can wait for.

use std::sync::atomic::{AtomicU64, Ordering::*};

/// Remaining receivers live in the top 16 bits of a slot's state, the largest latency seen
/// (ns, up to 78 hours) in the low 48.
const REMAINING_SHIFT: u32 = 48;
const LATENCY_MASK: u64 = (1 << REMAINING_SHIFT) - 1;
/// Most receivers one broadcast can be waited for.
pub const MAX_RECEIVERS: u32 = (1 << 16) - 1;

#[derive(Debug, Default)]
struct Slot {
    /// Message number + 1 this slot tracks (0: none yet).
    tag: AtomicU64,
    state: AtomicU64,
    intended_ns: AtomicU64,
}

/// What a subscriber's receipt did to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Counted; others are still to receive it.
    Pending,
    /// This receipt completed the broadcast; its completion latency (ns).
    Completed(u64),
    /// Not tracked: given up already, never armed (warm-up), or one receipt too many.
    Untracked,
}

/// An incomplete broadcast given up: its age when given up and receivers still missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GivenUp {
    pub age_ns: u64,
    pub missing: u32,
}

/// One publisher's ring.
#[derive(Debug)]
pub struct CompletionTable {
    slots: Box<[Slot]>,
}

impl CompletionTable {
    /// A ring of `window` (rounded up to a power of two) messages.
    pub fn new(window: usize) -> Self {
        let n = window.max(1).next_power_of_two();
        Self {
            slots: (0..n).map(|_| Slot::default()).collect(),
        }
    }

    fn slot(&self, msg: u64) -> &Slot {
        &self.slots[(msg as usize) & (self.slots.len() - 1)]
    }

    /// Before message `msg` is sent: it will be complete after `receivers` receipts. Returns
    /// the broadcast this slot gave up, if it was still incomplete.
    pub fn arm(&self, msg: u64, intended_ns: u64, receivers: u32, now_ns: u64) -> Option<GivenUp> {
        let slot = self.slot(msg);
        let old_state = slot.state.swap(0, AcqRel);
        let given_up = (slot.tag.load(Acquire) != 0 && old_state >> REMAINING_SHIFT > 0).then(|| GivenUp {
            age_ns: now_ns.saturating_sub(slot.intended_ns.load(Relaxed)),
            missing: (old_state >> REMAINING_SHIFT) as u32,
        });
        slot.intended_ns.store(intended_ns, Relaxed);
        slot.state.store(u64::from(receivers.min(MAX_RECEIVERS)) << REMAINING_SHIFT, Release);
        slot.tag.store(msg + 1, Release);
        given_up
    }

    /// A subscriber received message `msg` with this latency (ns).
    pub fn receive(&self, msg: u64, latency_ns: u64) -> Receipt {
        let slot = self.slot(msg);
        if slot.tag.load(Acquire) != msg + 1 {
            return Receipt::Untracked;
        }
        let latency_ns = latency_ns.min(LATENCY_MASK);
        let mut state = slot.state.load(Acquire);
        loop {
            let remaining = state >> REMAINING_SHIFT;
            if remaining == 0 {
                return Receipt::Untracked;
            }
            let max = (state & LATENCY_MASK).max(latency_ns);
            let next = ((remaining - 1) << REMAINING_SHIFT) | max;
            match slot.state.compare_exchange_weak(state, next, AcqRel, Acquire) {
                Ok(_) if remaining == 1 => return Receipt::Completed(max),
                Ok(_) => return Receipt::Pending,
                Err(now) => state = now,
            }
        }
        // A slot re-armed between the tag check and the swap would be counted off for the new
        // message: the window makes that a message older than the run waits for.
    }

    /// At the end: every armed broadcast still incomplete, at its age at `now_ns`.
    pub fn incomplete(&self, now_ns: u64) -> impl Iterator<Item = GivenUp> + '_ {
        self.slots.iter().filter_map(move |slot| {
            let state = slot.state.load(Acquire);
            (slot.tag.load(Acquire) != 0 && state >> REMAINING_SHIFT > 0).then(|| GivenUp {
                age_ns: now_ns.saturating_sub(slot.intended_ns.load(Relaxed)),
                missing: (state >> REMAINING_SHIFT) as u32,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_receipt_completes_with_the_largest_latency() {
        let t = CompletionTable::new(4);
        assert_eq!(t.arm(0, 1_000, 3, 1_000), None);
        assert_eq!(t.receive(0, 50), Receipt::Pending);
        assert_eq!(t.receive(0, 90), Receipt::Pending);
        assert_eq!(t.receive(0, 70), Receipt::Completed(90));
        assert_eq!(t.receive(0, 10), Receipt::Untracked, "one receipt too many");
        assert_eq!(t.receive(1, 10), Receipt::Untracked, "never armed");
        assert_eq!(t.incomplete(5_000).count(), 0);
    }

    #[test]
    fn incomplete_broadcasts_are_given_up_at_their_age_never_dropped() {
        let t = CompletionTable::new(2);
        t.arm(0, 1_000, 2, 1_000);
        t.arm(1, 2_000, 1, 2_000);
        assert_eq!(t.receive(0, 5), Receipt::Pending);
        // Message 2 needs message 0's slot: message 0 is given up with one receiver missing.
        assert_eq!(t.arm(2, 3_000, 2, 9_000), Some(GivenUp { age_ns: 8_000, missing: 1 }));
        assert_eq!(t.receive(0, 5), Receipt::Untracked);
        let left: Vec<_> = t.incomplete(10_000).collect();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&GivenUp { age_ns: 8_000, missing: 1 }));
        assert!(left.contains(&GivenUp { age_ns: 7_000, missing: 2 }));
    }

    #[test]
    fn receipts_from_many_threads_complete_exactly_once() {
        let t = std::sync::Arc::new(CompletionTable::new(1024));
        for m in 0..1000 {
            t.arm(m, 0, 8, 0);
        }
        let done: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8u64)
                .map(|i| {
                    let t = &t;
                    s.spawn(move || (0..1000).filter(|&m| matches!(t.receive(m, i), Receipt::Completed(7))).count() as u64)
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(done, 1000);
    }
}
