//! The load generator's doubts about its own figures, as typed warnings.
//!
//! A pure function of the summary: it looks for signs that the figures do not describe the
//! server alone (the load generator fell behind or was saturated), that something went wrong
//! (errors, corrupted or lost messages, failed connections), or that there is too little data.
//! The wording of each warning lives in `wsbench_core::warning`, shared with the reports.
//!
//! [`failed_checks`] is stricter: what makes a run that went to its end fail all the same
//! (exit code 1), because the server did not answer or connections could not be opened.

use wsbench_core::result::LoadgenSummary;
use wsbench_core::warning::{Warning, LOADGEN_CPU_LIMIT_PCT, MIN_SAMPLES};

/// Open loop: an answered rate below this share of the asked rate means the rate was not reached
/// (the same share the capacity search and the sweep's knee use).
pub use wsbench_core::slo::ACHIEVED_SHARE as RATE_REACHED_SHARE;

/// Why the run fails although it completed: unanswered messages beyond `config.max_loss`, failed
/// connections beyond `config.max_failed_connections`. Empty when it passes.
pub fn failed_checks(s: &LoadgenSummary) -> Vec<String> {
    let mut failed = Vec::new();
    let (m, plan) = (&s.messages, &s.config);
    let allowed = (plan.max_loss * m.sent as f64).floor() as u64;
    if m.lost > allowed {
        let pct = if m.sent > 0 { m.lost as f64 * 100.0 / m.sent as f64 } else { 100.0 };
        failed.push(format!(
            "{} of {} measured messages ({pct:.2} %) were never answered: the server did not answer; --max-loss allows {} %",
            m.lost,
            m.sent,
            plan.max_loss * 100.0
        ));
    }
    // A wrong answer is no better than none: unmatched replies share the --max-loss allowance.
    if m.unmatched > allowed {
        failed.push(format!(
            "{} replies named a request that was never sent or carried no readable sequence number ({} were paired with their request); --max-loss allows {} % of {} measured messages",
            m.unmatched,
            m.received,
            plan.max_loss * 100.0,
            m.sent
        ));
    }
    // Pushes are the server's right, but when they outnumber the answers the correlation rule
    // most likely reads the wrong field, and the latency figures describe a sliver of the load.
    if m.unsolicited > m.received {
        failed.push(format!(
            "{} frames answered no outstanding request, more than the {} that did: check --match-json / --match-regex against what the server sends",
            m.unsolicited, m.received
        ));
    }
    let c = &s.connections;
    if c.failed > plan.max_failed_connections {
        failed.push(format!(
            "{} of {} connections failed to open ({}); --max-failed-connections allows {}",
            c.failed,
            c.target,
            crate::describe_causes(&c.failures),
            plan.max_failed_connections
        ));
    }
    if let Some(ch) = c.churn.as_ref().filter(|ch| ch.unclean > 0) {
        let ways: Vec<String> = ch.closes.iter().filter(|(k, _)| k.as_str() != "close 1000 normal closure").map(|(k, n)| format!("{n}× {k}")).collect();
        failed.push(format!(
            "{} of {} replaced connections did not close cleanly ({}): the server did not answer close 1000 with its own",
            ch.unclean,
            ch.clean + ch.unclean,
            ways.join(", ")
        ));
    }
    if let Some(start) = s.start.as_ref().filter(|st| st.late) {
        let shard = s.shard.as_ref().map(|sh| format!("shard {}/{} ", sh.index, sh.count)).unwrap_or_default();
        failed.push(format!(
            "{shard}began its warm-up {:.3} s after --start-at {} (more than one {} interval late): its schedule no longer lines up with the other shards'; start the shards earlier or give them a later --start-at",
            start.late_by_s,
            start.at,
            wsbench_core::units::format_duration(plan.interval)
        ));
    }
    failed
}

/// Every warning that applies to `s` (its own `warnings` field is ignored).
pub fn warnings(s: &LoadgenSummary) -> Vec<Warning> {
    let mut w = Vec::new();
    if let Some(reason) = &s.reason {
        w.push(Warning::incomplete(reason));
    } else if !s.complete {
        w.push(Warning::incomplete("unknown reason"));
    }
    if s.send_lag_us.count > 0 && s.send_lag_us.p99 > wsbench_core::warning::send_lag_limit_us(s.config.coalesce) {
        w.push(Warning::send_lag_high_with(s.send_lag_us.p99, Some(s.cpu.busiest_thread_pct), s.config.coalesce));
    }
    if s.cpu.busiest_thread_pct > LOADGEN_CPU_LIMIT_PCT {
        w.push(Warning::loadgen_saturated(s.cpu.busiest_thread_pct));
    }
    let m = s.messages;
    if m.errors > 0 {
        w.push(Warning::errors_seen(m.errors));
    }
    if m.corrupted > 0 {
        w.push(Warning::corrupted(m.corrupted));
    }
    if m.unmatched > 0 {
        w.push(Warning::unmatched(m.unmatched, m.received));
    }
    if m.unsolicited > 0 {
        w.push(Warning::unsolicited(m.unsolicited, m.received));
    }
    if m.lost > 0 {
        w.push(Warning::unanswered(m.lost, m.sent, s.unanswered_min_age_us.unwrap_or(0.0)));
    }
    if s.connections.failed > 0 {
        let c = &s.connections;
        w.push(Warning::connections_failed_by_cause(c.failed, c.target, &crate::describe_causes(&c.failures)));
    }
    // A connection ramp plans to hold its fewest at some point, not all of them throughout.
    let planned = if s.config.ramps_connections() { s.config.stages.iter().filter_map(|st| st.connections).fold(s.config.first_connections(), u32::min) } else { s.connections.target };
    if let Some(held) = s.connections.held.filter(|h| *h < planned) {
        w.push(Warning::connections_not_held(held, planned));
    }
    if let Some(rate) = s.rate {
        // A window that never began says nothing about the rate.
        if s.duration_s > 0.0 && s.throughput_msgs_per_s < RATE_REACHED_SHARE * rate.asked_msgs_per_s {
            w.push(Warning::rate_not_reached(rate.asked_msgs_per_s, rate.sent_msgs_per_s, s.throughput_msgs_per_s, s.messages.late));
        }
    }
    if s.latency_us.count < MIN_SAMPLES {
        w.push(Warning::too_few_samples(s.latency_us.count));
    }
    if s.setup.tls.as_ref().is_some_and(|t| t.insecure) {
        w.push(Warning::tls_insecure());
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench_core::hist::LatencySummary;
    use wsbench_core::result::{ConnectionCounts, CpuUse, HostInfo, MessageCounts, RateReport};
    use wsbench_core::warning::WarningKind::{self, *};

    fn healthy() -> LoadgenSummary {
        let lat = LatencySummary { count: 50_000, p50: 50.0, p99: 120.0, ..Default::default() };
        LoadgenSummary {
            schema_version: 1,
            complete: true,
            reason: None,
            wsbench_version: "0".into(),
            config: Default::default(),
            command: vec![],
            host: HostInfo::current(),
            started_at: String::new(),
            duration_s: 10.0,
            throughput_msgs_per_s: 5_000.0,
            rate: Some(RateReport { asked_msgs_per_s: 5_000.0, sent_msgs_per_s: 5_000.0 }),
            messages: MessageCounts { sent: 50_000, received: 50_000, ..Default::default() },
            connections: ConnectionCounts { target: 10, established: 10, failed: 0, held: Some(10), ..Default::default() },
            latency_us: lat,
            service_time_us: lat,
            send_lag_us: LatencySummary { count: 50_000, p99: 30.0, ..Default::default() },
            cpu: CpuUse { process_pct: 40.0, busiest_thread_pct: 35.0 },
            allocations_per_message: None,
            worker_allocations_per_message: None,
            unanswered_min_age_us: None,
            failed_checks: vec![],
            warnings: vec![],
            shard: None,
            start: None,
            setup: Default::default(),
            fanout: None,
            idle: Vec::new(),
            rx_timestamps: None,
        }
    }

    fn kinds(s: &LoadgenSummary) -> Vec<WarningKind> {
        warnings(s).into_iter().map(|w| w.kind).collect()
    }

    #[test]
    fn a_late_shard_fails_its_checks_and_an_early_one_does_not() {
        let mut s = healthy();
        s.shard = Some(wsbench_core::result::ShardReport { index: 1, count: 2, total_connections: 20, total_rate: None });
        s.start = Some(wsbench_core::result::StartReport { at: "2026-11-29T03:00:00Z".into(), late_by_s: 0.2, late: false });
        assert!(failed_checks(&s).is_empty());
        s.start = Some(wsbench_core::result::StartReport { at: "2026-11-29T03:00:00Z".into(), late_by_s: 4.5, late: true });
        let failed = failed_checks(&s);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].starts_with("shard 1/2 began its warm-up 4.500 s after --start-at 2026-11-29T03:00:00Z"), "{failed:?}");
    }

    #[test]
    fn a_healthy_run_has_no_warnings() {
        assert!(warnings(&healthy()).is_empty(), "{:?}", warnings(&healthy()));
    }

    #[test]
    fn a_coalescing_period_asked_for_is_lag_by_design_but_not_past_it() {
        let mut s = healthy();
        s.config.coalesce = wsbench_core::plan::Coalesce::Every(std::time::Duration::from_millis(1));
        s.send_lag_us.p99 = 1_500.0;
        assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
        s.send_lag_us.p99 = 2_100.0;
        assert_eq!(kinds(&s), [SendLagHigh]);
        let m = &warnings(&s)[0].message;
        assert!(m.contains("over 2") && m.contains("--coalesce 1ms"), "{m}");
    }

    #[test]
    fn each_doubt_has_its_warning() {
        let mut s = healthy();
        s.send_lag_us.p99 = 1_500.0;
        assert_eq!(kinds(&s), [SendLagHigh]);
        // Not busy: something else kept the threads from running; more threads would not help.
        let advice = &warnings(&s)[0].message;
        assert!(advice.contains("not busy") && advice.contains("35 %") && !advice.contains("use more threads"), "{advice}");
        s.cpu.busiest_thread_pct = 99.0;
        let advice = &warnings(&s)[0].message;
        assert!(advice.contains("99 % of a core") && advice.contains("use more threads"), "{advice}");

        let mut s = healthy();
        s.cpu.busiest_thread_pct = 97.0;
        assert_eq!(kinds(&s), [LoadgenSaturated]);

        let mut s = healthy();
        s.messages.errors = 1;
        s.messages.corrupted = 2;
        s.messages.lost = 3;
        s.unanswered_min_age_us = Some(2_500_000.0);
        s.connections.failed = 4;
        s.connections.failures.insert("refused".into(), 4);
        assert_eq!(kinds(&s), [ErrorsSeen, MessagesCorrupted, MessagesLost, ConnectionsFailed]);
        assert!(warnings(&s)[2].message.contains("at least 2.5 s"), "{}", warnings(&s)[2].message);
        assert!(warnings(&s)[3].message.contains("4 of 10 connections failed to open (refused)"), "{}", warnings(&s)[3].message);

        let mut s = healthy();
        s.throughput_msgs_per_s = 4_700.0;
        assert_eq!(kinds(&s), [RateNotReached]);
        s.throughput_msgs_per_s = 4_760.0;
        assert!(kinds(&s).is_empty(), "95 % is reached");

        let mut s = healthy();
        s.latency_us.count = 999;
        assert_eq!(kinds(&s), [TooFewSamples]);

        let mut s = healthy();
        s.complete = false;
        s.reason = Some("interrupted by SIGINT".into());
        let w = warnings(&s);
        assert_eq!(w[0].kind, Incomplete);
        assert!(w[0].message.contains("SIGINT"));
    }

    #[test]
    fn unmatched_replies_fail_like_unanswered_ones_and_pushes_only_when_they_outnumber_replies() {
        let mut s = healthy();
        s.messages.unsolicited = 49_999;
        assert_eq!(kinds(&s), [RepliesUnsolicited]);
        assert!(failed_checks(&s).is_empty(), "pushes beside the replies are the server's right");
        s.messages.unsolicited = 50_001;
        let f = failed_checks(&s);
        assert!(f.len() == 1 && f[0].contains("50001 frames answered no outstanding request"), "{f:?}");

        let mut s = healthy();
        s.messages.unmatched = 1;
        assert_eq!(kinds(&s), [RepliesUnmatched]);
        let f = failed_checks(&s);
        assert!(f.len() == 1 && f[0].contains("1 replies named a request that was never sent"), "{f:?}");
        s.config.max_loss = 0.001;
        assert!(failed_checks(&s).is_empty(), "within --max-loss");
        s.messages.unmatched = 51;
        assert_eq!(failed_checks(&s).len(), 1);
    }

    #[test]
    fn unanswered_messages_and_failed_connections_fail_the_run_beyond_their_budget() {
        let mut s = healthy();
        assert!(failed_checks(&s).is_empty());
        s.messages.lost = 50;
        let f = failed_checks(&s);
        assert_eq!(f.len(), 1);
        assert!(f[0].contains("50 of 50000") && f[0].contains("never answered"), "{f:?}");
        s.config.max_loss = 0.001; // 50 of 50,000 is exactly 0.1 %
        assert!(failed_checks(&s).is_empty());
        s.messages.lost = 51;
        assert_eq!(failed_checks(&s).len(), 1);

        let mut s = healthy();
        s.connections.failed = 2;
        s.connections.failures = [("timeout".to_owned(), 2)].into();
        let f = failed_checks(&s);
        assert!(f[0].contains("2 of 10 connections failed to open (timeout)"), "{f:?}");
        s.config.max_failed_connections = 2;
        assert!(failed_checks(&s).is_empty());
    }

    #[test]
    fn connections_not_held_for_the_whole_window_are_named() {
        let mut s = healthy();
        s.connections.held = Some(7);
        assert_eq!(kinds(&s), [ConnectionsNotHeld]);
        assert!(warnings(&s)[0].message.starts_with("only 7 of 10 planned connections"), "{:?}", warnings(&s));
        s.connections.held = None;
        assert!(warnings(&s).is_empty(), "no window, no claim");
    }

    #[test]
    fn closed_loop_has_no_rate_check() {
        let mut s = healthy();
        s.rate = None;
        s.throughput_msgs_per_s = 1.0;
        assert!(kinds(&s).is_empty());
    }
}
