//! Typed warnings shown next to the figures they put in doubt.
//!
//! A figure that looks fine can still be wrong: the load generator may have been the bottleneck,
//! messages may have been lost, the run may have been cut short. Each kind of doubt is a variant
//! with its own message, so reports can list them and tools can match on them.

use serde::{Deserialize, Serialize};

use crate::slo::ACHIEVED_SHARE;
use crate::units::thousands;

/// Send lag p99 above this (µs) means the load generator could not keep its schedule.
pub const SEND_LAG_P99_LIMIT_US: f64 = 1_000.0;

/// The send lag p99 past which a run's load generator is judged behind: [`SEND_LAG_P99_LIMIT_US`]
/// on top of a coalescing period asked for (a send up to that late is what was asked).
pub fn send_lag_limit_us(coalesce: crate::plan::Coalesce) -> f64 {
    SEND_LAG_P99_LIMIT_US + coalesce.period().map_or(0.0, |d| d.as_secs_f64() * 1e6)
}
/// A load-generator thread busier than this (% of one core) was probably the bottleneck.
pub const LOADGEN_CPU_LIMIT_PCT: f64 = 90.0;
/// Fewer measured messages than this make tail percentiles guesswork.
pub const MIN_SAMPLES: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    SendLagHigh,
    LoadgenSaturated,
    ErrorsSeen,
    MessagesCorrupted,
    MessagesLost,
    ConnectionsFailed,
    ConnectionsNotHeld,
    RateNotReached,
    TooFewSamples,
    Incomplete,
    TlsInsecure,
    /// Template loads: replies naming a request that was never sent, or no readable number.
    RepliesUnmatched,
    /// Template loads: frames answering no outstanding request (pushes, duplicates).
    RepliesUnsolicited,
}

/// One warning as stored in result files: `{"kind": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    pub message: String,
}

impl Warning {
    fn new(kind: WarningKind, message: String) -> Self {
        Self { kind, message }
    }

    /// The load generator fell behind its schedule. The advice follows what its busiest thread
    /// measured (`busiest_thread_pct`, % of one core): a saturated thread needs help, an idle
    /// one was kept from running by something else.
    pub fn send_lag_high(p99_us: f64) -> Self {
        Self::send_lag_high_with(p99_us, None, crate::plan::Coalesce::Auto)
    }

    /// As [`Self::send_lag_high`], with the busiest thread's CPU use to name the cause and the
    /// coalescing the run asked for (its period is lag by design, see [`send_lag_limit_us`]).
    pub fn send_lag_high_with(p99_us: f64, busiest_thread_pct: Option<f64>, coalesce: crate::plan::Coalesce) -> Self {
        let lag = crate::units::latency_us(p99_us);
        let limit = match coalesce.period() {
            Some(d) => format!("{}, which allows {} for --coalesce {coalesce}", crate::units::latency_us(send_lag_limit_us(coalesce)), crate::units::latency_us(d.as_secs_f64() * 1e6)),
            None => crate::units::latency_us(SEND_LAG_P99_LIMIT_US),
        };
        let why = match busiest_thread_pct {
            Some(pct) if pct > LOADGEN_CPU_LIMIT_PCT => format!(
                "its busiest thread used {pct:.0} % of a core, so it could not send faster; use more threads or processes, or a lower rate"
            ),
            Some(pct) => format!(
                "its threads were not busy (the busiest used {pct:.0} % of a core), so they were kept waiting: other processes took the CPU, \
                 or the timer woke late; more threads will not help: use a quieter machine, leave a core free, or try --realtime"
            ),
            None => "use more threads or processes, or a lower rate".into(),
        };
        Self::new(
            WarningKind::SendLagHigh,
            format!("send lag p99 is {lag} (over {limit}): the load generator fell behind its schedule, so latency includes its own delay; {why}"),
        )
    }

    pub fn loadgen_saturated(thread_cpu_pct: f64) -> Self {
        Self::new(
            WarningKind::LoadgenSaturated,
            format!(
                "a load-generator thread used {thread_cpu_pct:.0} % of a core (over {LOADGEN_CPU_LIMIT_PCT:.0} %): it, not the server, may be the bottleneck; add threads or processes"
            ),
        )
    }

    pub fn errors_seen(errors: u64) -> Self {
        Self::new(WarningKind::ErrorsSeen, format!("{errors} errors (failed sends, receives or dropped connections) during the run"))
    }

    pub fn corrupted(n: u64) -> Self {
        Self::new(WarningKind::MessagesCorrupted, format!("{n} echoes did not match what was sent (sequence, length or content)"))
    }

    /// Template loads: replies the correlation rule could not pair with any request sent.
    pub fn unmatched(n: u64, received: u64) -> Self {
        Self::new(
            WarningKind::RepliesUnmatched,
            format!("{n} replies named a request that was never sent or no readable sequence number ({received} were paired with their request): the server answers with wrong ids, or the correlation rule reads the wrong field"),
        )
    }

    /// Template loads: frames that answered nothing outstanding.
    pub fn unsolicited(n: u64, received: u64) -> Self {
        Self::new(
            WarningKind::RepliesUnsolicited,
            format!("{n} frames answered no outstanding request (server pushes without the correlation field, or duplicate answers), beside {received} replies; they are not in the latency figures"),
        )
    }

    pub fn lost(n: u64) -> Self {
        Self::new(WarningKind::MessagesLost, format!("{n} messages were never answered"))
    }

    /// Unanswered messages, recorded at the age they had reached when the run ended.
    /// Broadcast, push: deliveries that never happened, with their causes.
    pub fn deliveries_missing(n: u64, expected: u64, causes: &str) -> Self {
        let pct = if expected > 0 { n as f64 * 100.0 / expected as f64 } else { 100.0 };
        Self::new(
            WarningKind::MessagesLost,
            format!("{n} of {expected} expected deliveries ({pct:.2} %) never happened ({causes}); broadcasts some member missed are in the completion latency at the age they had reached"),
        )
    }

    pub fn unanswered(n: u64, sent: u64, min_age_us: f64) -> Self {
        let pct = if sent > 0 { n as f64 * 100.0 / sent as f64 } else { 100.0 };
        Self::new(
            WarningKind::MessagesLost,
            format!(
                "{n} of {sent} messages ({pct:.2} %) were never answered; they are in the latency figures at the age they had reached when the run ended, so their latency is at least {}",
                crate::units::latency_us(min_age_us)
            ),
        )
    }

    pub fn connections_failed(failed: u32, target: u32) -> Self {
        Self::new(WarningKind::ConnectionsFailed, format!("{failed} of {target} connections failed to open"))
    }

    /// As [`Self::connections_failed`], naming the causes (`3× refused, 1× timeout`).
    pub fn connections_failed_by_cause(failed: u32, target: u32, causes: &str) -> Self {
        Self::new(WarningKind::ConnectionsFailed, format!("{failed} of {target} connections failed to open ({causes})"))
    }

    /// Fewer connections than planned were open for the whole measured window (they failed to
    /// open, or closed or were dropped before its end): the server carried less load than asked.
    pub fn connections_not_held(held: u32, target: u32) -> Self {
        Self::new(
            WarningKind::ConnectionsNotHeld,
            format!("only {held} of {target} planned connections were open for the whole measured window: the server held fewer connections than asked"),
        )
    }

    /// Open loop: fewer echoes per second came back within the window than were asked for.
    /// `sent` tells whose fault it is: when the load generator itself sent less, the run does not
    /// show the server's limit.
    pub fn rate_not_reached(asked: f64, sent: f64, achieved: f64, late: u64) -> Self {
        let text = if sent < ACHIEVED_SHARE * asked {
            format!(
                "asked for {} msgs/s but the load generator sent only {} msgs/s and {} msgs/s were answered \
                 within the window: the load generator fell behind its schedule (see send lag), so this run does not show the server's limit",
                thousands(asked),
                thousands(sent),
                thousands(achieved)
            )
        } else {
            let late = if late > 0 { format!(" ({late} more echoes arrived late, after the window)") } else { String::new() };
            format!(
                "asked for {} msgs/s but only {} msgs/s were answered within the window{late}: the server is overloaded at this rate",
                thousands(asked),
                thousands(achieved)
            )
        };
        Self::new(WarningKind::RateNotReached, text)
    }

    pub fn too_few_samples(n: u64) -> Self {
        Self::new(WarningKind::TooFewSamples, format!("only {} messages measured (fewer than {}): tail percentiles are unreliable", thousands(n as f64), thousands(MIN_SAMPLES as f64)))
    }

    pub fn tls_insecure() -> Self {
        Self::new(WarningKind::TlsInsecure, "TLS certificates were not checked (--insecure): the server was not authenticated".into())
    }

    pub fn incomplete(reason: &str) -> Self {
        Self::new(WarningKind::Incomplete, format!("the run did not complete: {reason}"))
    }
}
