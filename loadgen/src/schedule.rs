//! Send-schedule arithmetic: when a run's phases begin and end, and when each open-loop message is
//! due.
//!
//! Everything here is a pure function of plain numbers (monotonic nanoseconds), so it is tested
//! without sockets, timers or a runtime. Nothing here reads the clock or sleeps; the connection
//! loop asks "what is due at `now`?" and the pacer turns the answer into a wake-up.

use std::time::Duration;

const NS_PER_S: u64 = 1_000_000_000;

/// The phases of one run on the monotonic clock, in nanoseconds.
///
/// ```text
/// start ── warm-up ──> measured_start ── duration ──> measured_end ── drain ──> drain_deadline
/// ```
///
/// Every worker thread and connection receives the same timeline, so intervals, open-loop phases
/// and the end of sending line up across the whole process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// First send (warm-up begins).
    pub start_ns: u64,
    /// Warm-up ends; from here on messages are counted and recorded.
    pub measured_start_ns: u64,
    /// No message intended at or after this instant is sent.
    pub measured_end_ns: u64,
    /// Echoes still outstanding at this instant are counted as lost.
    pub drain_deadline_ns: u64,
    /// Length of one histogram interval.
    pub interval_ns: u64,
    /// How long after `measured_end_ns` a message intended before it may still leave: a
    /// coalescing clock fires up to its period after a deadline, so one firing may come after
    /// the end for deadlines before it (0: none).
    pub send_grace_ns: u64,
}

impl Timeline {
    pub fn new(start_ns: u64, warmup: Duration, duration: Duration, drain_timeout: Duration) -> Self {
        let measured_start_ns = start_ns + duration_ns(warmup);
        let measured_end_ns = measured_start_ns + duration_ns(duration);
        Self { start_ns, measured_start_ns, measured_end_ns, drain_deadline_ns: measured_end_ns + duration_ns(drain_timeout), interval_ns: NS_PER_S, send_grace_ns: 0 }
    }

    /// The same timeline with histogram intervals of `interval` (one second by default).
    pub fn with_interval(self, interval: Duration) -> Self {
        Self { interval_ns: duration_ns(interval).max(1), ..self }
    }

    /// True when a message intended at `t` belongs to the warm-up (echoed, never recorded).
    #[inline]
    pub fn is_warmup(&self, t: u64) -> bool {
        t < self.measured_start_ns
    }

    /// True when a message intended at `t` may still be sent.
    #[inline]
    pub fn may_send(&self, t: u64) -> bool {
        t < self.measured_end_ns
    }

    /// True when a message intended in the window may still leave at `now` (see
    /// [`Self::send_grace_ns`]); a backlog later than that is left unsent.
    #[inline]
    pub fn may_send_late_at(&self, now: u64) -> bool {
        now < self.measured_end_ns.saturating_add(self.send_grace_ns)
    }

    /// The absolute end of interval `k` (intervals count from 0 at `measured_start_ns`).
    pub fn interval_end(&self, k: u64) -> u64 {
        self.measured_start_ns + (k + 1) * self.interval_ns
    }
}

/// Nanoseconds of a duration, saturating at `u64::MAX` (584 years).
pub fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Open-loop schedule of one connection.
///
/// The process sends `rate` messages per second in total. Message `g` of the whole process
/// (counting from 0) is intended at `start + g / rate`; connection `i` of `n` owns the messages
/// `g = i, i + n, i + 2n, ...`, so each connection sends at `rate / n` with phase `i / rate` and the
/// aggregate is evenly spread. Intended times are absolute: a connection that falls behind sends
/// its backlog, it never re-bases its schedule (that would hide the delay, coordinated omission).
///
/// A shard (see [`ShardSpan`]) numbers the messages of its own part of the whole load's
/// schedule this way instead, and maps each to its place in the whole.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenLoopSchedule {
    start_ns: u64,
    connection: u64,
    connections: u64,
    ns_per_msg: f64,
    span: ShardSpan,
    /// A ramp's rate over time; `None`: the steady `1 / ns_per_msg`. A reference keeps the
    /// schedule `Copy` and small on the hot path (see [`Ramp::leak`]).
    ramp: Option<&'static Ramp>,
    /// Message numbers start here: a connection ramp's segment begins at its first message
    /// (see [`ConnectionRamp`]).
    offset: u64,
}

/// The rate over time of a ramp (k6-style stages, [`wsbench_core::plan::Stage`]), as pieces on
/// which the rate moves linearly, counted from the schedule's start (the warm-up's, which runs
/// at the steady rate). Message `g` of the process is intended when the messages asked so far,
/// the integral of the rate, reach `g`: inverting a linear rate's quadratic integral.
#[derive(Debug, Clone, PartialEq)]
pub struct Ramp {
    pieces: Vec<Piece>,
}

/// One piece of a [`Ramp`]: from `start_s` (seconds since the schedule's start), `messages`
/// asked before it, a rate of `rate` msgs/s moving by `slope` msgs/s per second.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Piece {
    start_s: f64,
    messages: f64,
    rate: f64,
    slope: f64,
}

impl Ramp {
    /// The ramp of a run whose warm-up lasts `warmup` at `rate`, followed by `stages`.
    pub fn new(warmup: Duration, rate: f64, stages: &[wsbench_core::plan::Stage]) -> Self {
        let mut pieces = vec![Piece { start_s: 0.0, messages: 0.0, rate, slope: 0.0 }];
        let (mut t, mut n, mut r) = (warmup.as_secs_f64(), rate * warmup.as_secs_f64(), rate);
        for st in stages {
            let d = st.duration.as_secs_f64();
            if d == 0.0 {
                // A step: the next piece starts from the new rate.
                r = st.rate;
                continue;
            }
            let slope = (st.rate - r) / d;
            pieces.push(Piece { start_s: t, messages: n, rate: r, slope });
            n += r * d + slope * d * d / 2.0;
            t += d;
            r = st.rate;
        }
        // After the last stage the rate stays; nothing is sent then, but times stay ordered.
        pieces.push(Piece { start_s: t, messages: n, rate: r, slope: 0.0 });
        Self { pieces }
    }

    /// Keeps the ramp for the rest of the process, so schedules can refer to it: one per worker,
    /// made once before the run, never freed (a few hundred bytes).
    pub fn leak(self) -> &'static Ramp {
        Box::leak(Box::new(self))
    }

    /// The piece in which the `g`-th message (continuous count) falls.
    fn piece_for_messages(&self, g: f64) -> &Piece {
        let i = self.pieces.partition_point(|p| p.messages <= g);
        &self.pieces[i.saturating_sub(1)]
    }

    /// Seconds since the start at which `g` messages have been asked; infinite when the rate
    /// has gone to 0 for good before that.
    pub fn time_of(&self, g: f64) -> f64 {
        let p = self.piece_for_messages(g);
        let x = g - p.messages;
        // r·τ + s·τ²/2 = x, solved in the form that stays exact when s is 0 or negative.
        let disc = p.rate * p.rate + 2.0 * p.slope * x;
        if disc < 0.0 {
            return f64::INFINITY;
        }
        let denom = p.rate + disc.sqrt();
        if denom <= 0.0 {
            return if x <= 0.0 { p.start_s } else { f64::INFINITY };
        }
        p.start_s + 2.0 * x / denom
    }

    /// Messages asked from the start until `t_s` seconds after it.
    pub fn messages_at(&self, t_s: f64) -> f64 {
        let i = self.pieces.partition_point(|p| p.start_s <= t_s);
        let p = &self.pieces[i.saturating_sub(1)];
        let tau = (t_s - p.start_s).max(0.0);
        p.messages + p.rate * tau + p.slope * tau * tau / 2.0
    }

    /// The first message (of the process) intended at or after `t_s` seconds from the start.
    pub fn first_message_at(&self, t_s: f64) -> u64 {
        // Message g is intended when the rate's integral reaches g.
        (self.messages_at(t_s) - 1e-9).max(0.0).ceil() as u64
    }

    /// The highest rate anywhere on the ramp (buffers are sized for it).
    pub fn peak_rate(&self) -> f64 {
        let ends = self.pieces.windows(2).map(|w| w[0].rate + w[0].slope * (w[1].start_s - w[0].start_s));
        self.pieces.iter().map(|p| p.rate).chain(ends).fold(0.0, f64::max)
    }
}

/// How many connections are open over a run whose stages ramp them, and which connection
/// sends which message.
///
/// The open count moves linearly over each stage like the rate, from the previous stage's
/// count (the warm-up's: the load's `connections`) to the stage's; it changes by one
/// connection at a time, each change halfway between two whole counts (so the mean over a
/// stage is the linear one), and connections `0..open` are the ones open. The run is cut into
/// segments at each change; in a segment that opens at message `first` with `open`
/// connections, connection `j < open` sends messages `first + j + m * open`, so the open
/// connections share the rate evenly and every message has exactly one sender. Connections
/// beyond `open` are closed for the segment and send nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRamp {
    segments: Vec<Segment>,
}

/// One stretch of a [`ConnectionRamp`] with a constant open count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// When it begins (monotonic ns).
    pub start_ns: u64,
    /// The first message of the process intended at or after `start_ns`.
    pub first: u64,
    /// Connections open during it.
    pub open: u32,
}

impl ConnectionRamp {
    /// The ramp of a run starting at `start_ns` whose warm-up lasts `warmup` with `first`
    /// connections, followed by `stages`; `rate` says when each message is intended.
    pub fn new(start_ns: u64, warmup: Duration, first: u32, stages: &[wsbench_core::plan::Stage], rate: &Ramp) -> Self {
        let mut changes = vec![(0.0f64, first)];
        let (mut t, mut n) = (warmup.as_secs_f64(), first);
        for st in stages {
            let d = st.duration.as_secs_f64();
            let to = st.connections.unwrap_or(n);
            if d == 0.0 {
                if to != n {
                    changes.push((t, to));
                }
            } else {
                let steps = n.abs_diff(to);
                for m in 1..=steps {
                    let at = t + d * (f64::from(m) - 0.5) / f64::from(steps);
                    changes.push((at, if to > n { n + m } else { n - m }));
                }
            }
            t += d;
            n = to;
        }
        let segments = changes
            .into_iter()
            .map(|(t_s, open)| Segment {
                start_ns: start_ns.saturating_add((t_s * NS_PER_S as f64).round() as u64),
                first: rate.first_message_at(t_s),
                open,
            })
            .collect();
        Self { segments }
    }

    /// Keeps the ramp for the rest of the process (see [`Ramp::leak`]).
    pub fn leak(self) -> &'static ConnectionRamp {
        Box::leak(Box::new(self))
    }

    /// Segment `i` (there is always a first).
    #[inline]
    pub fn segment(&self, i: usize) -> Segment {
        self.segments[i.min(self.segments.len() - 1)]
    }

    /// The first message after segment `i` (`u64::MAX` after the last).
    #[inline]
    pub fn end_of(&self, i: usize) -> u64 {
        self.segments.get(i + 1).map_or(u64::MAX, |s| s.first)
    }

    /// The first segment from `from` on in which connection `j` is open.
    pub fn next_open(&self, from: usize, j: u32) -> Option<usize> {
        (from..self.segments.len()).find(|&i| j < self.segments[i].open)
    }

    /// Connections open at `t_ns`.
    pub fn open_at(&self, t_ns: u64) -> u32 {
        let i = self.segments.partition_point(|s| s.start_ns <= t_ns);
        self.segments[i.saturating_sub(1)].open
    }

    /// The fewest connections open at once anywhere on the ramp.
    pub fn fewest(&self) -> u32 {
        self.segments.iter().map(|s| s.open).min().unwrap_or(0)
    }

    /// How many of the messages `from..to` the places for which `owns` is true send (a
    /// shard's, say): in each segment, place `j` sends every `open`-th message from `first + j`.
    pub fn messages_of(&self, from: u64, to: u64, owns: impl Fn(u32) -> bool) -> u64 {
        // Numbers below `x` that leave `r` modulo `m`.
        let below = |x: u64, m: u64, r: u64| if x > r { (x - r - 1) / m + 1 } else { 0 };
        let mut n = 0;
        for (i, seg) in self.segments.iter().enumerate() {
            let (a, b) = (seg.first.max(from), self.end_of(i).min(to));
            if a >= b {
                continue;
            }
            let open = u64::from(seg.open);
            for j in (0..seg.open).filter(|&j| owns(j)) {
                n += below(b - seg.first, open, u64::from(j)) - below(a - seg.first, open, u64::from(j));
            }
        }
        n
    }
}

/// Where a shard's open-loop messages sit in the whole load's schedule.
///
/// The whole load (`total` connections, `rate` msgs/s) intends its message `g` at `g / rate`,
/// sent by connection `g % total`. Shard `i` of `n` holds connections `i, i + n, ...`
/// ([`wsbench_core::plan::Shard`]), so of every block of `total` consecutive messages it owns
/// `owned` at offsets `i, i + n, ...`: its own message `m` is the whole load's
/// `g(m) = (m / owned)·total + i + (m % owned)·n`. Its open connections take turns over `m`
/// as one process's connections take turns over `g`; when every connection of the shard
/// opened, its connection `j` sends exactly what connection `i + j·n` sends in one process,
/// so the shards' schedules together are the one-process schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardSpan {
    first: u64,
    stride: u64,
    owned: u64,
    block: u64,
    /// The whole load's rate.
    rate: f64,
}

impl ShardSpan {
    /// The span of `shard` in a load of `total` connections at `rate` msgs/s.
    ///
    /// # Panics
    /// If the shard owns no connection (validated with the command line).
    pub fn new(shard: wsbench_core::plan::Shard, total: u32, rate: f64) -> Self {
        let owned = shard.share(total);
        assert!(owned > 0, "shard {shard} of {total} connections owns none");
        Self { first: u64::from(shard.index), stride: u64::from(shard.count), owned: u64::from(owned), block: u64::from(total), rate }
    }

    /// A whole load: message `m` is message `m`.
    const WHOLE: Self = Self { first: 0, stride: 1, owned: 1, block: 1, rate: 0.0 };

    /// The whole load's number of this shard's message `m`.
    #[inline]
    pub fn global(&self, m: u64) -> u64 {
        (m / self.owned) * self.block + self.first + (m % self.owned) * self.stride
    }
}

impl OpenLoopSchedule {
    /// Schedule of connection `connection` (0-based) of `connections`, sending `rate` msgs/s in total.
    ///
    /// # Panics
    /// If `rate` is not a positive finite number or `connection >= connections` (both are
    /// validated with the command line).
    pub fn new(start_ns: u64, connection: u32, connections: u32, rate: f64) -> Self {
        assert!(rate > 0.0 && rate.is_finite(), "rate must be positive, got {rate}");
        assert!(connection < connections, "connection {connection} of {connections}");
        Self { start_ns, connection: u64::from(connection), connections: u64::from(connections), ns_per_msg: NS_PER_S as f64 / rate, span: ShardSpan::WHOLE, ramp: None, offset: 0 }
    }

    /// The same schedule numbering the process's messages from `first` (a segment of a
    /// [`ConnectionRamp`]: this connection's `k`-th message is then message
    /// `first + connection + k * connections`).
    pub fn from_message(self, first: u64) -> Self {
        Self { offset: first, ..self }
    }

    /// The same connection's schedule on a ramp. A shard's ramp is the whole load's: its
    /// messages keep their numbers in the whole, and the ramp says when each is due.
    pub fn on_ramp(self, ramp: Option<&'static Ramp>) -> Self {
        Self { ramp, ..self }
    }

    /// The same connection's schedule within a shard's part of a larger load: `connection` and
    /// `connections` then count the shard's open connections, and the whole load's rate sets
    /// the pace. `None` leaves the schedule as it is.
    pub fn within(self, span: Option<ShardSpan>) -> Self {
        match span {
            Some(span) => Self { span, ns_per_msg: NS_PER_S as f64 / span.rate, ..self },
            None => self,
        }
    }

    /// Intended send time of this connection's `k`-th message (0-based).
    #[inline]
    pub fn intended(&self, k: u64) -> u64 {
        let g = self.offset + self.span.global(self.connection + k * self.connections);
        if let Some(ramp) = self.ramp {
            let t = ramp.time_of(g as f64);
            return if t.is_finite() { self.start_ns.saturating_add((t * NS_PER_S as f64).round() as u64) } else { u64::MAX };
        }
        // f64 is exact to the nanosecond for offsets below 2^53 ns (104 days).
        self.start_ns + (g as f64 * self.ns_per_msg).round() as u64
    }

    /// Mean nanoseconds between two messages of this connection.
    pub fn period_ns(&self) -> f64 {
        self.ns_per_msg * self.connections as f64 * self.span.block as f64 / self.span.owned as f64
    }

    /// Index of the first message of this connection intended at or after `t`.
    pub fn first_at_or_after(&self, t: u64) -> u64 {
        if t <= self.intended(0) {
            return 0;
        }
        // Estimate, then correct for rounding in either direction.
        let mut k = match self.ramp {
            // Messages of the whole load asked by then, of which a shard has `owned` in every
            // `block` and this connection every n-th of those.
            Some(ramp) => {
                let asked = ramp.messages_at((t - self.start_ns) as f64 / NS_PER_S as f64) - self.offset as f64;
                let own = asked * self.span.owned as f64 / self.span.block as f64;
                ((own - self.connection as f64) / self.connections as f64).max(0.0).floor() as u64
            }
            None => (((t - self.start_ns) as f64 - self.offset as f64 * self.ns_per_msg) / self.period_ns()).max(0.0).floor() as u64,
        };
        while k > 0 && self.intended(k - 1) >= t {
            k -= 1;
        }
        while self.intended(k) < t {
            k += 1;
        }
        k
    }

    /// How many of this connection's messages fall in `[from, to)`.
    pub fn count_between(&self, from: u64, to: u64) -> u64 {
        if to <= from {
            return 0;
        }
        self.first_at_or_after(to) - self.first_at_or_after(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench_core::plan::Stage;

    const S: u64 = NS_PER_S;

    fn stage(secs: f64, rate: f64) -> Stage {
        Stage { duration: Duration::from_secs_f64(secs), rate, connections: None }
    }

    #[test]
    fn a_connection_ramp_moves_the_open_count_one_connection_at_a_time() {
        let st = |secs: f64, connections: u32| Stage { duration: Duration::from_secs_f64(secs), rate: 1_000.0, connections: Some(connections) };
        let stages = [st(1.0, 5), st(2.0, 20), st(0.0, 8), st(1.0, 8)];
        let rate = Ramp::new(Duration::from_secs(1), 1_000.0, &stages);
        let cr = ConnectionRamp::new(10 * S, Duration::from_secs(1), 5, &stages, &rate);
        // Warm-up and first stage at 5; 15 changes over the 2 s ramp, halfway between counts.
        assert_eq!(cr.open_at(10 * S), 5);
        assert_eq!(cr.open_at(12 * S), 5);
        assert_eq!(cr.open_at(12 * S + S / 15 - 1), 5, "the first opens half a step in");
        assert_eq!(cr.open_at(12 * S + S / 15 + 1), 6);
        assert_eq!(cr.open_at(13 * S), 13, "halfway: 12.5 rounds to the half-step rule's 13");
        assert_eq!(cr.open_at(14 * S - 1), 20);
        assert_eq!(cr.open_at(14 * S), 8, "a 0s stage is a step");
        assert_eq!(cr.fewest(), 5);
        // Segments begin at the first message intended at or after them, in order.
        for i in 0..cr.segments.len() - 1 {
            let (a, b) = (cr.segment(i), cr.segment(i + 1));
            assert!(a.start_ns <= b.start_ns && a.first <= b.first && cr.end_of(i) == b.first);
            let t = (b.start_ns - 10 * S) as f64 / S as f64;
            assert!(rate.time_of(b.first as f64) >= t - 1e-9 && (b.first == 0 || rate.time_of(b.first as f64 - 1.0) < t), "segment {}", i + 1);
        }
        assert_eq!(cr.end_of(cr.segments.len() - 1), u64::MAX);
        assert_eq!(cr.next_open(0, 7), Some(cr.segments.iter().position(|s| s.open > 7).unwrap()));
        assert_eq!(cr.next_open(cr.segments.len() - 1, 8), None, "place 8 stays closed after the step down");
        // Counting a place's messages agrees with sending them one by one.
        let (from, to) = (rate.first_message_at(1.5), rate.first_message_at(4.5));
        let mut by_place = [0u64; 20];
        for (i, seg) in cr.segments.iter().enumerate() {
            for g in seg.first.max(from)..cr.end_of(i).min(to) {
                by_place[((g - seg.first) % u64::from(seg.open)) as usize] += 1;
            }
        }
        for j in 0..20u32 {
            assert_eq!(cr.messages_of(from, to, |p| p == j), by_place[j as usize], "place {j}");
        }
        assert_eq!(cr.messages_of(from, to, |_| true), to - from);
    }

    #[test]
    fn a_ramp_asks_the_integral_of_its_rate() {
        // 1 s warm-up at 100/s, then 100 -> 300/s over 2 s, a step to 50/s, 1 s flat.
        let r = Ramp::new(Duration::from_secs(1), 100.0, &[stage(2.0, 300.0), stage(0.0, 50.0), stage(1.0, 50.0)]);
        assert!((r.messages_at(1.0) - 100.0).abs() < 1e-9);
        assert!((r.messages_at(3.0) - 500.0).abs() < 1e-9, "100 + (100+300)/2·2");
        assert!((r.messages_at(4.0) - 550.0).abs() < 1e-9);
        for g in [0.0, 50.0, 100.0, 250.0, 499.0, 500.0, 525.0, 549.0] {
            let t = r.time_of(g);
            assert!((r.messages_at(t) - g).abs() < 1e-6, "g {g}: t {t}");
        }
        assert_eq!(r.peak_rate(), 300.0);
    }

    #[test]
    fn a_ramp_down_to_zero_never_reaches_the_messages_beyond_it() {
        let r = Ramp::new(Duration::ZERO, 100.0, &[stage(2.0, 0.0)]);
        assert!((r.messages_at(2.0) - 100.0).abs() < 1e-9);
        assert!(r.time_of(99.0).is_finite());
        assert_eq!(r.time_of(101.0), f64::INFINITY);
    }

    #[test]
    fn connections_share_a_ramp_in_turn() {
        let ramp = Ramp::new(Duration::ZERO, 1_000.0, &[stage(1.0, 3_000.0)]).leak();
        let scheds: Vec<_> = (0..4).map(|i| OpenLoopSchedule::new(0, i, 4, 1_000.0).on_ramp(Some(ramp))).collect();
        let mut all: Vec<u64> = scheds.iter().flat_map(|s| (0..600).map(|k| s.intended(k))).collect();
        all.sort_unstable();
        // 2,000 messages in the second: 1,000·0.5 + 2,000·0.5²/2 = 750 in its first half.
        let first_half = all.iter().filter(|&&t| t < S / 2).count();
        let second_half = all.iter().filter(|&&t| (S / 2..S).contains(&t)).count();
        assert!((first_half as i64 - 750).abs() <= 2 && (second_half as i64 - 1_250).abs() <= 2, "{first_half} {second_half}");
        for s in &scheds {
            for t in [0, S / 3, S / 2, 9 * S / 10] {
                let k = s.first_at_or_after(t);
                assert!(s.intended(k) >= t && (k == 0 || s.intended(k - 1) < t));
            }
        }
    }

    #[test]
    fn timeline_phases_follow_each_other() {
        let t = Timeline::new(1_000, Duration::from_secs(2), Duration::from_millis(2_500), Duration::from_secs(1));
        assert_eq!(t.measured_start_ns, 1_000 + 2 * S);
        assert_eq!(t.measured_end_ns, t.measured_start_ns + 2_500_000_000);
        assert_eq!(t.drain_deadline_ns, t.measured_end_ns + S);
        assert!(t.is_warmup(t.measured_start_ns - 1));
        assert!(!t.is_warmup(t.measured_start_ns));
        assert!(t.may_send(t.measured_end_ns - 1));
        assert!(!t.may_send(t.measured_end_ns));
        // No grace unless a coalescing clock asks for it.
        assert!(!t.may_send_late_at(t.measured_end_ns));
        let g = Timeline { send_grace_ns: 1_000_000, ..t };
        assert!(g.may_send_late_at(t.measured_end_ns + 999_999) && !g.may_send_late_at(t.measured_end_ns + 1_000_000));
        assert_eq!(t.interval_end(0), t.measured_start_ns + S);
        assert_eq!(t.interval_end(2), t.measured_start_ns + 3 * S);
    }

    #[test]
    fn connections_interleave_into_an_even_aggregate() {
        // 4 connections at 1000 msgs/s in total: every millisecond one message, round robin.
        let scheds: Vec<_> = (0..4).map(|i| OpenLoopSchedule::new(5 * S, i, 4, 1_000.0)).collect();
        let mut all: Vec<(u64, u32)> = Vec::new();
        for (i, s) in scheds.iter().enumerate() {
            for k in 0..250 {
                all.push((s.intended(k), i as u32));
            }
        }
        all.sort();
        for (g, (t, conn)) in all.iter().enumerate() {
            assert_eq!(*t, 5 * S + g as u64 * 1_000_000, "message {g}");
            assert_eq!(*conn as usize, g % 4, "message {g}");
        }
        assert_eq!(scheds[0].period_ns(), 4_000_000.0);
    }

    #[test]
    fn intended_times_are_absolute_and_never_drift() {
        // 3 msgs/s does not divide a second into whole nanoseconds; rounding must not accumulate.
        let s = OpenLoopSchedule::new(0, 0, 1, 3.0);
        assert_eq!(s.intended(3), S);
        assert_eq!(s.intended(3_000_000), 1_000_000 * S);
        assert_eq!(s.intended(1), 333_333_333);
        assert_eq!(s.intended(2), 666_666_667);
    }

    #[test]
    fn backlog_after_a_stall_is_everything_due() {
        // 10 msgs/s on one connection, the sender stalls for 1.05 s after message 0: at the
        // wake-up, messages 1..=10 are all due and must be sent, none skipped.
        let s = OpenLoopSchedule::new(0, 0, 1, 10.0);
        let now = 1_050_000_000;
        let due = s.first_at_or_after(now + 1) - 1;
        assert_eq!(due, 10);
        assert!((1..=10).all(|k| s.intended(k) <= now));
        assert!(s.intended(11) > now);
    }

    #[test]
    fn counts_in_a_window_add_up_to_rate_times_duration() {
        let rate = 2_000.0;
        let n = 7;
        let scheds: Vec<_> = (0..n).map(|i| OpenLoopSchedule::new(S, i, n, rate)).collect();
        let t = Timeline::new(S, Duration::from_secs(1), Duration::from_secs(2), Duration::ZERO);
        let total: u64 = scheds.iter().map(|s| s.count_between(t.measured_start_ns, t.measured_end_ns)).sum();
        assert_eq!(total, 4_000);
        let warm: u64 = scheds.iter().map(|s| s.count_between(t.start_ns, t.measured_start_ns)).sum();
        assert_eq!(warm, 2_000);
    }

    #[test]
    fn first_at_or_after_is_exact_around_every_message() {
        let s = OpenLoopSchedule::new(123, 2, 5, 777.7);
        for k in 0..2_000 {
            let t = s.intended(k);
            assert_eq!(s.first_at_or_after(t), k);
            assert_eq!(s.first_at_or_after(t + 1), k + 1);
            if t > 0 {
                assert_eq!(s.first_at_or_after(t - 1), k);
            }
        }
        assert_eq!(s.first_at_or_after(0), 0);
        assert_eq!(s.count_between(10, 5), 0);
    }

    use wsbench_core::plan::Shard;

    /// Every intended time (with its whole-load connection) over `blocks` rounds of the schedule.
    fn one_process(total: u32, rate: f64, rounds: u64) -> Vec<(u64, u64)> {
        let mut all: Vec<(u64, u64)> = (0..total)
            .flat_map(|c| {
                let s = OpenLoopSchedule::new(S, c, total, rate);
                (0..rounds).map(move |k| (s.intended(k), u64::from(c)))
            })
            .collect();
        all.sort();
        all
    }

    #[test]
    fn the_shards_together_send_exactly_the_one_process_schedule() {
        // Every shard count against every connection count up to 13, remainders included.
        for total in 1..=13u32 {
            for count in 1..=total {
                for rate in [1_000.0, 777.7, 3.0] {
                    let rounds = 7;
                    let mut union: Vec<(u64, u64)> = Vec::new();
                    for i in 0..count {
                        let shard = Shard::new(i, count).unwrap();
                        let owned = shard.share(total);
                        let span = ShardSpan::new(shard, total, rate);
                        for j in 0..owned {
                            let s = OpenLoopSchedule::new(S, j, owned, rate * f64::from(owned) / f64::from(total)).within(Some(span));
                            union.extend((0..rounds).map(|k| (s.intended(k), shard.global_index(j))));
                        }
                    }
                    union.sort();
                    assert_eq!(union, one_process(total, rate, rounds), "{total} connections in {count} shards at {rate} msgs/s");
                }
            }
        }
    }

    #[test]
    fn a_shard_with_a_failed_connection_still_sends_its_whole_part() {
        // 10 connections, shard 1 of 3 owns connections 1, 4, 7; one fails to open, and the two
        // that opened share the shard's messages: the same intended times, none lost or doubled.
        let shard = Shard::new(1, 3).unwrap();
        let span = ShardSpan::new(shard, 10, 1_000.0);
        let part: Vec<u64> = {
            let mut v: Vec<u64> = one_process(10, 1_000.0, 20).into_iter().filter(|(_, c)| shard.owns(*c)).map(|(t, _)| t).collect();
            v.truncate(30);
            v
        };
        let mut shared: Vec<u64> = (0..2).flat_map(|j| {
            let s = OpenLoopSchedule::new(S, j, 2, 300.0).within(Some(span));
            (0..15).map(move |k| s.intended(k))
        }).collect();
        shared.sort();
        assert_eq!(shared, part);
    }

    #[test]
    fn the_shards_of_a_ramp_together_send_exactly_its_one_process_schedule() {
        // 1 s warm-up at 1,000/s, up to 3,000/s over 1 s, a step down to 500/s held for 1 s.
        let stages = [stage(1.0, 3_000.0), stage(0.0, 500.0), stage(1.0, 500.0)];
        let ramp = Ramp::new(Duration::from_secs(1), 1_000.0, &stages).leak();
        let rounds = 40;
        for total in [1u32, 2, 5, 7, 12] {
            let one: Vec<(u64, u64)> = {
                let mut all: Vec<(u64, u64)> = (0..total)
                    .flat_map(|c| {
                        let s = OpenLoopSchedule::new(S, c, total, 1_000.0).on_ramp(Some(ramp));
                        (0..rounds).map(move |k| (s.intended(k), u64::from(c)))
                    })
                    .collect();
                all.sort();
                all
            };
            for count in 1..=total {
                let mut union: Vec<(u64, u64)> = Vec::new();
                for i in 0..count {
                    let shard = Shard::new(i, count).unwrap();
                    let owned = shard.share(total);
                    let span = ShardSpan::new(shard, total, 1_000.0);
                    for j in 0..owned {
                        let s = OpenLoopSchedule::new(S, j, owned, 1_000.0 * f64::from(owned) / f64::from(total)).within(Some(span)).on_ramp(Some(ramp));
                        union.extend((0..rounds).map(|k| (s.intended(k), shard.global_index(j))));
                        // Finding the next message after an instant is exact within a shard's ramp too.
                        for k in [0, rounds / 3, rounds - 1] {
                            let t = s.intended(k);
                            assert_eq!((s.first_at_or_after(t), s.first_at_or_after(t + 1)), (k, k + 1), "{total} in {count}, shard {i} place {j}");
                        }
                    }
                }
                union.sort();
                assert_eq!(union, one, "{total} connections in {count} shards");
            }
        }
    }

    #[test]
    fn first_at_or_after_is_exact_within_a_shard() {
        let span = ShardSpan::new(Shard::new(2, 3).unwrap(), 11, 997.0);
        let s = OpenLoopSchedule::new(5, 1, 3, 250.0).within(Some(span));
        for k in 0..2_000 {
            let t = s.intended(k);
            assert!(k == 0 || t > s.intended(k - 1));
            assert_eq!(s.first_at_or_after(t), k);
            assert_eq!(s.first_at_or_after(t + 1), k + 1);
        }
    }
}
