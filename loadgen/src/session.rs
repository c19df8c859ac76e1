//! What a connection does regardless of how its frames reach the wire: when to send, what each
//! message says, how an echo is checked and recorded, and what is lost at the end.
//!
//! Both client engines (tungstenite in [`crate::connection`], the allocation-free codec in
//! [`crate::zero`]) drive one [`Session`] each: the transport asks [`Session::next_due`] which
//! message to send, builds it with [`Session::header`] and [`Filler::tail`], reports it with
//! [`Session::sent`] once it is handed over, and passes every echo to [`Session::on_echo`]. The
//! checking and recording rules therefore exist once, and both engines measure the same thing.
//!
//! Nothing here allocates after [`Session::new`]: the ring of outstanding headers is sized up
//! front for a second of backlog and never grows (open-loop messages beyond it are only
//! counted, their headers rebuilt from the schedule), and recording goes into the worker's
//! pre-sized histograms.

use std::collections::VecDeque;
use std::future::Future;

use wsbench_core::clock::now_ns;
use wsbench_core::header::MessageHeader;
use wsbench_core::plan::Mode;

use crate::connection::{ConnShared, ConnEnd, Filler, SendMode, Stop};
use crate::schedule::OpenLoopSchedule;
use crate::template::{Correlator, Found, Values};

/// Open loop: the ring of outstanding messages holds this much backlog (at the connection's
/// rate) before it has to grow, so a stalled server does not cause allocations mid-run.
const OUTSTANDING_BUDGET_S: f64 = 1.0;
/// Bounds on that ring, in messages (32 bytes each).
const OUTSTANDING_MIN: usize = 4;
const OUTSTANDING_MAX: usize = 1 << 16;
/// Open loop: messages sent per turn of the connection's loop at most. Between batches the
/// loop reads what has arrived, so a sender behind schedule never starves receiving: echoes are
/// timestamped when they arrive, not when the backlog has been sent.
pub const SEND_BATCH: u32 = 64;

/// One connection's engine-independent state. Owned by its task; shares only [`ConnShared`].
pub struct Session<'a> {
    pub shared: &'a ConnShared,
    /// This connection's place among its worker's connections (see [`crate::recorder::Recorder::pending`]).
    slot: usize,
    schedule: Option<OpenLoopSchedule>,
    /// The worker's filler pattern (the same for every connection).
    pub filler: &'a Filler,
    /// The messages sent and not yet echoed, oldest first (in sequence order).
    outstanding: VecDeque<Pending>,
    /// Template loads: this connection's correlation rule, random generator and number. Boxed:
    /// inline, every echo connection's task would carry its 88 bytes.
    foreign: Option<Box<ForeignConn>>,
    /// Open loop, echo: messages sent and not yet echoed after those in `outstanding`, which
    /// was full when they were sent (a server more than a second behind). They are the last
    /// `beyond` messages sent, the oldest numbered `beyond_next`; their intended times are the
    /// schedule's, their send times what their echoes carry.
    beyond: u64,
    beyond_next: u64,
    /// Message numbers skipped with a warm-up backlog: `skipped.0..skipped.1` were never sent.
    skipped: (u64, u64),
    next_seq: u64,
    /// Closed loop: messages that may be sent now.
    credits: u32,
    /// Open loop: messages this turn may still send (see [`SEND_BATCH`]).
    batch_left: u32,
    /// False once the window has ended or a stop was requested: only draining is left.
    pub sending: bool,
    drain_deadline: u64,
    /// When the measured window closes (earlier after a stop): echoes after it are late.
    window_end: u64,
    /// Churn: this connection's place in the schedule, which seeds its lifetimes.
    index: u32,
    /// Churn: messages sent on the current connection, and the sequence number of its first.
    conn_sent: u64,
    conn_first_seq: u64,
    /// Churn: connections opened in this place so far (the first included).
    generation: u64,
    /// Churn: when the current connection is to be replaced or closed, by churn or by a
    /// connection ramp, whichever comes first (u64::MAX: never). From then on nothing is sent
    /// until the echoes are back and a new connection is open.
    churn_at: u64,
    /// Change in messages outstanding not yet handed to the recorder (see [`Self::flush`]).
    /// Both counts cover one turn (a flush before every wait), so 32 bits are plenty, and every
    /// connection carries them.
    unflushed: i32,
    /// Closed loop: measured messages sent since the last flush. Their send lag is 0 by
    /// definition (sent when allowed), so it is recorded once per batch, not per message.
    unflushed_sent: u32,
    /// Connection ramps (`shared.connection_ramp`): the segment this connection's schedule is
    /// in ([`NO_SEGMENT`]: closed for good), and the sequence number its first message there has.
    segment: u32,
    k0: u64,
    /// Connection ramps: the segment at whose start the ramp closes this place, planned once
    /// its last message before then is sent ([`NO_SEGMENT`]: none planned). `segment` is then
    /// the one in which it opens again. Segment numbers, not instants: every connection
    /// carries them.
    close_segment: u32,
}

/// No segment of a connection ramp (see [`Session::segment`]).
const NO_SEGMENT: u32 = u32::MAX;

impl<'a> Session<'a> {
    /// The session of connection number `index` (of the process's open connections), the
    /// `slot`-th of its worker.
    pub fn new(shared: &'a ConnShared, index: u32, slot: usize) -> Self {
        let tl = shared.timeline;
        let (schedule, credits, ring) = match shared.send_mode {
            SendMode::Closed { in_flight } => (None, in_flight, in_flight as usize),
            SendMode::Open { rate, connections, span, ramp } => {
                let backlog = rate / f64::from(connections.max(1)) * OUTSTANDING_BUDGET_S;
                let ring = (backlog.ceil() as usize).clamp(OUTSTANDING_MIN, OUTSTANDING_MAX);
                // A connection ramp's places beyond the fewest get their schedule per segment.
                let connection = if shared.connection_ramp.is_some() { index.min(connections.max(1) - 1) } else { index };
                (Some(OpenLoopSchedule::new(tl.start_ns, connection, connections, rate).within(span).on_ramp(ramp)), 0, ring)
            }
        };
        Self {
            shared,
            slot,
            schedule,
            filler: &shared.filler,
            outstanding: VecDeque::with_capacity(ring),
            foreign: shared.foreign.as_ref().map(|f| {
                Box::new(ForeignConn {
                    correlator: f.correlator.clone(),
                    // Seeded by the connection's number: a rerun sends the same random text.
                    rng: fastrand::Rng::with_seed(0x5753_4245_4e43_4800 ^ u64::from(index)),
                    conn: index,
                })
            }),
            beyond: 0,
            beyond_next: 0,
            skipped: (u64::MAX, u64::MAX),
            next_seq: 0,
            credits,
            batch_left: SEND_BATCH,
            sending: true,
            drain_deadline: tl.drain_deadline_ns,
            window_end: tl.measured_end_ns,
            index,
            conn_sent: 0,
            conn_first_seq: 0,
            generation: 0,
            churn_at: u64::MAX,
            unflushed: 0,
            unflushed_sent: 0,
            segment: 0,
            k0: 0,
            close_segment: NO_SEGMENT,
        }
        .with_lifetime(now_ns())
        .on_connection_ramp()
    }

    /// Connection ramps: places the schedule in the first segment this connection is open in
    /// (the fleet opens it then).
    fn on_connection_ramp(mut self) -> Self {
        if let Some(cr) = self.shared.connection_ramp {
            self.segment = cr.next_open(0, self.index).map_or(NO_SEGMENT, |i| i as u32);
            self.schedule = self.segment_schedule().or(self.schedule);
            self.advance_segment();
        }
        self
    }

    /// This connection's schedule in its current segment of the connection ramp (`None` past
    /// the last, where it is closed for good).
    fn segment_schedule(&self) -> Option<OpenLoopSchedule> {
        let (cr, SendMode::Open { rate, ramp, .. }) = (self.shared.connection_ramp?, self.shared.send_mode) else { return None };
        if self.segment == NO_SEGMENT {
            return None;
        }
        let seg = cr.segment(self.segment as usize);
        Some(OpenLoopSchedule::new(self.shared.timeline.start_ns, self.index, seg.open, rate).on_ramp(ramp).from_message(seg.first))
    }

    /// Connection ramps: once the next message falls past the current segment, moves to the
    /// next segment this connection is open in. When it is closed in between, the connection
    /// closes when that begins (`close_segment`; `churn_at` follows it, so churn's step does
    /// the closing) and opens again when it ends; one closing is planned at a time, the next
    /// once it has opened again. Churn may replace the connection meanwhile: the closing stays.
    fn advance_segment(&mut self) {
        let Some(cr) = self.shared.connection_ramp else { return };
        while self.segment != NO_SEGMENT && self.close_segment == NO_SEGMENT {
            let seg = cr.segment(self.segment as usize);
            let next = seg.first + u64::from(self.index) + (self.next_seq - self.k0) * u64::from(seg.open);
            if next < cr.end_of(self.segment as usize) {
                return;
            }
            self.segment += 1;
            let at = cr.segment(self.segment as usize);
            if self.index >= at.open {
                self.churn_at = self.churn_at.min(at.start_ns);
                self.close_segment = self.segment;
                self.segment = cr.next_open(self.segment as usize, self.index).map_or(NO_SEGMENT, |i| i as u32);
            }
            // Closed for good: the last schedule stays, its next message past the close.
            if let Some(s) = self.segment_schedule() {
                self.schedule = Some(s);
                self.k0 = self.next_seq;
            }
        }
    }

    /// When the ramp closes this place (`u64::MAX`: no closing planned).
    fn ramp_close_at(&self) -> u64 {
        match self.shared.connection_ramp {
            Some(cr) if self.close_segment != NO_SEGMENT => cr.segment(self.close_segment as usize).start_ns,
            _ => u64::MAX,
        }
    }

    /// Asked once the connection has closed: when its place opens again. `None`: churn's
    /// replacement, at once. `Some`: a connection ramp closed the place (its closing has come,
    /// whether churn's fell due with it or earlier), which opens again then (`u64::MAX`: never);
    /// the closing is done with, and no replacement opens meanwhile.
    pub fn reopen_at(&mut self) -> Option<u64> {
        if now_ns() < self.ramp_close_at() {
            return None;
        }
        let cr = self.shared.connection_ramp?;
        self.close_segment = NO_SEGMENT;
        Some(if self.segment == NO_SEGMENT { u64::MAX } else { cr.segment(self.segment as usize).start_ns })
    }

    /// Starts the current connection's lifetime at `now` (see [`wsbench_core::plan::Churn`]).
    fn with_lifetime(mut self, now: u64) -> Self {
        self.set_lifetime(now);
        self
    }

    fn set_lifetime(&mut self, now: u64) {
        let lifetime = match self.shared.churn.connection_lifetime {
            None => u64::MAX,
            Some(life) => {
                // Uniform in [1 - j, 1 + j] of the lifetime, the same for the same place and
                // generation in every run.
                let u = splitmix64((u64::from(self.index) << 32) ^ self.generation) as f64 / u64::MAX as f64;
                let factor = 1.0 + self.shared.churn.lifetime_jitter * (2.0 * u - 1.0);
                now.saturating_add((life.as_nanos() as f64 * factor) as u64)
            }
        };
        // A closing the ramp planned stays planned across churn's replacements.
        self.churn_at = lifetime.min(self.ramp_close_at());
    }

    /// Churn: the current connection is due to be replaced, so nothing more is sent on it.
    #[inline]
    pub fn churn_due(&self, now: u64) -> bool {
        now >= self.churn_at
    }

    /// Churn: the current connection should close now: it is due, sending goes on, and its
    /// echoes are back (or their wait, bounded by the drain timeout, is over: they are then
    /// counted as unanswered).
    pub fn wants_reconnect(&self) -> bool {
        // Not due before its time: without churn the clock is not read.
        if self.churn_at == u64::MAX {
            return false;
        }
        let now = now_ns();
        self.sending && self.churn_due(now) && (self.outstanding.is_empty() || now >= self.churn_at.saturating_add(self.shared.churn_drain_ns))
    }

    /// Churn: a new connection took the place of the old one at `now` (or a connection ramp
    /// opened the place again).
    pub fn reconnected(&mut self, now: u64) {
        self.generation += 1;
        self.conn_sent = 0;
        self.conn_first_seq = self.next_seq;
        if let SendMode::Closed { in_flight } = self.shared.send_mode {
            // Echoes given up on at the close took their credits with them.
            self.credits = in_flight.saturating_sub(self.outstanding.len() as u32);
        }
        self.set_lifetime(now);
        self.advance_segment();
    }

    /// Churn: connections that took this place after the first.
    pub fn reopened(&self) -> u64 {
        self.generation
    }

    /// This connection's place among its worker's connections.
    #[inline]
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Sequence number of the next message to send.
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// True for a fixed-rate schedule.
    pub fn is_open_loop(&self) -> bool {
        self.schedule.is_some()
    }

    /// The window is over, sending has ended, and every echo is back (or the drain is over).
    /// A connection with nothing left to send stays open until the window ends: it is load
    /// the server holds whether or not a message of its falls inside the window.
    pub fn is_done(&self) -> bool {
        if self.sending {
            return false;
        }
        let now = now_ns();
        now >= self.window_end && ((self.outstanding.is_empty() && self.beyond == 0) || now >= self.drain_deadline)
    }

    /// The instant the connection's timer should fire next.
    pub fn next_deadline(&self) -> u64 {
        let tl = self.shared.timeline;
        if !self.sending {
            return if now_ns() < self.window_end { self.window_end } else { self.drain_deadline };
        }
        // Without churn `churn_at` is never, and the clock is not read for it.
        if self.churn_at != u64::MAX && self.churn_due(now_ns()) {
            // Waiting for the echoes before the close; bounded.
            return self.churn_at.saturating_add(self.shared.churn_drain_ns);
        }
        let next = match &self.schedule {
            Some(s) => s.intended(self.next_seq - self.k0),
            None if now_ns() < tl.start_ns => tl.start_ns,
            None => tl.measured_end_ns,
        };
        next.min(self.churn_at)
    }

    pub fn apply_stop(&mut self, stop: Stop) {
        self.sending = false;
        self.drain_deadline = self.drain_deadline.min(stop.drain_until_ns);
        self.window_end = self.window_end.min(stop.at_ns);
    }

    /// Starts a turn's batch of sends (see [`SEND_BATCH`]).
    #[inline]
    pub fn start_batch(&mut self) {
        self.batch_left = SEND_BATCH;
    }

    /// Open loop: a message is due already, so the loop should come back at once (after reading
    /// what has arrived) rather than wait for a timer.
    pub fn is_behind(&self) -> bool {
        let now = now_ns();
        self.sending && !self.churn_due(now) && self.schedule.is_some_and(|s| s.intended(self.next_seq - self.k0) <= now)
    }

    /// Whether a message may be sent now: `Some(intended)` when one is due, where `intended` is
    /// `None` in closed loop (the intended time is the actual send time). Ends sending when the
    /// window is over. A transport calls it in a loop after [`Self::start_batch`], so everything
    /// due goes out in batches of at most [`SEND_BATCH`]: the whole backlog after a stall, with
    /// reads in between.
    #[inline]
    pub fn next_due(&mut self) -> Option<Option<u64>> {
        self.next_due_at(now_ns())
    }

    /// [`Self::next_due`] as of `now`, a clock reading the caller already has (never later than
    /// the true time, so nothing is sent before it is due).
    #[inline]
    pub fn next_due_at(&mut self, now: u64) -> Option<Option<u64>> {
        if !self.sending {
            return None;
        }
        let tl = self.shared.timeline;
        match self.schedule {
            Some(s) => {
                let mut intended = s.intended(self.next_seq - self.k0);
                if tl.is_warmup(intended) && !tl.is_warmup(now) {
                    // A warm-up backlog is never measured: skip it, so that a load generator
                    // behind schedule still sends measured messages in the window (its lag
                    // then shows in send lag and latency) instead of warm-up ones only.
                    let first = self.k0 + s.first_at_or_after(tl.measured_start_ns);
                    self.skipped = (self.next_seq, first);
                    self.next_seq = first;
                    self.advance_segment();
                    intended = match self.schedule {
                        Some(s) => s.intended(self.next_seq - self.k0),
                        None => return None,
                    };
                }
                // Sending ends with the window, even with a backlog left: what was not sent in
                // time shows as a rate not reached, and the drain stays bounded.
                if !tl.may_send(intended) || !tl.may_send_late_at(now) {
                    self.sending = false;
                    return None;
                }
                if intended > now || self.batch_left == 0 || self.churn_due(now) {
                    return None;
                }
                self.batch_left -= 1;
                Some(Some(intended))
            }
            None => {
                if now < tl.start_ns {
                    return None;
                }
                if !tl.may_send(now) {
                    self.sending = false;
                    return None;
                }
                (self.credits > 0 && !self.churn_due(now)).then_some(None)
            }
        }
    }

    /// The header of the next message, sent at `sent_ns` (read as late as possible, right
    /// before the hand-over). Nothing is counted until [`Self::sent`].
    #[inline]
    pub fn header(&self, intended: Option<u64>, sent_ns: u64) -> MessageHeader {
        let intended_ns = intended.unwrap_or(sent_ns);
        MessageHeader { seq: self.next_seq, intended_ns, sent_ns, warmup: self.shared.timeline.is_warmup(intended_ns) }
    }

    /// True when messages come from a template and replies are paired by a correlation rule.
    #[inline]
    pub fn is_foreign(&self) -> bool {
        self.foreign.is_some()
    }

    /// Template loads: appends the next message, intended at `ts_ns`, to `out`.
    #[inline]
    pub fn render(&mut self, out: &mut bytes::BytesMut, ts_ns: u64) {
        let (Some(shared), Some(f)) = (self.shared.foreign.as_ref(), self.foreign.as_mut()) else { return };
        shared.template.render(out, Values { seq: self.next_seq, conn: f.conn, ts_ns }, &mut f.rng);
    }

    /// The message with `header` was handed to the transport.
    #[inline]
    pub fn sent(&mut self, header: MessageHeader) {
        self.next_seq += 1;
        self.conn_sent += 1;
        if self.shared.connection_ramp.is_some() {
            self.advance_segment();
        }
        if self.shared.churn.reconnect_after.is_some_and(|n| self.conn_sent >= n) {
            self.churn_at = self.churn_at.min(header.sent_ns);
        }
        if self.schedule.is_none() {
            self.credits -= 1;
        }
        // Growing the ring would allocate mid-run. (Template replies may come in any order and
        // are paired by number within the ring, so a template load's ring grows instead.)
        if self.foreign.is_none() && (self.beyond > 0 || self.outstanding.len() == self.outstanding.capacity()) {
            if self.beyond == 0 {
                self.beyond_next = header.seq;
            }
            self.beyond += 1;
        } else {
            self.outstanding.push_back(Pending::new(header));
        }
        self.unflushed += 1;
        if !header.warmup {
            if self.schedule.is_none() && self.foreign.is_none() {
                self.unflushed_sent += 1;
            } else {
                self.shared.recorder.borrow_mut().sent(header.sent_ns - header.intended_ns);
            }
        }
    }

    /// Hands the batch's bookkeeping to the worker's recorder: the change in messages
    /// outstanding and the oldest of them, and the closed-loop sends. Called before the
    /// connection waits (by [`Turns::wait`]) and when it gives up, so the recorder is up to
    /// date whenever another task (an interval boundary) reads it.
    pub fn flush(&mut self) {
        if self.unflushed == 0 && self.unflushed_sent == 0 {
            return;
        }
        let mut rec = self.shared.recorder.borrow_mut();
        rec.pending(self.slot, i64::from(self.unflushed), self.oldest_intended());
        rec.sent_zero_lag(u64::from(self.unflushed_sent));
        self.unflushed = 0;
        self.unflushed_sent = 0;
    }

    /// Checks and records one echo received at `now`: it must answer the oldest outstanding
    /// message (echoes come back in order on one connection) with the same frame type, header,
    /// length and filler.
    pub fn on_echo(&mut self, data: &[u8], is_text: bool, now: u64) {
        if self.foreign.is_some() {
            return self.on_reply(data, now);
        }
        let tl = self.shared.timeline;
        let Some(h) = self.outstanding.pop_front().map(|p| p.header()).or_else(|| self.take_beyond(data)) else {
            // An echo of nothing: the server made it up.
            if !tl.is_warmup(now) {
                self.shared.recorder.borrow_mut().unexpected();
            }
            return;
        };
        if h.seq == self.conn_first_seq {
            // The connection's first exchange, warm-up or not: what a cold connection costs.
            wsbench_core::hist::record_ns(&mut self.shared.first_message.borrow_mut(), now.saturating_sub(h.sent_ns));
        }
        self.unflushed -= 1;
        if !h.warmup {
            let mut rec = self.shared.recorder.borrow_mut();
            let intact = is_text == (self.shared.mode == Mode::Text)
                && h.is_at_start_of(data)
                && self.filler.matches(data, h.seq);
            if intact {
                rec.received(now.saturating_sub(h.intended_ns), now.saturating_sub(h.sent_ns));
            } else {
                rec.corrupted();
            }
            if now >= self.window_end {
                rec.late();
            }
        }
        if self.schedule.is_none() && self.sending {
            self.credits += 1;
        }
    }

    /// Template loads: pairs a reply with the outstanding request whose sequence number the
    /// correlation rule finds in it, in any order, and records its latency from that request's
    /// intended send time. A reply naming no request of this connection is `unmatched`; one
    /// naming none at all, or a request already answered or given up, is `unsolicited`.
    fn on_reply(&mut self, data: &[u8], now: u64) {
        let counted = !self.shared.timeline.is_warmup(now);
        let Some(f) = self.foreign.as_mut() else { return };
        let found = f.correlator.find(data);
        let seq = match found {
            Found::Seq(seq) => seq,
            Found::Nothing | Found::Unreadable => {
                if counted {
                    let mut rec = self.shared.recorder.borrow_mut();
                    if found == Found::Nothing { rec.unsolicited() } else { rec.unmatched() }
                }
                return;
            }
        };
        let at = self.outstanding.binary_search_by_key(&seq, |p| p.seq).ok().filter(|&i| !self.outstanding[i].answered);
        let Some(i) = at else {
            if counted {
                let mut rec = self.shared.recorder.borrow_mut();
                // Below `next_seq` it was sent (or skipped with a warm-up backlog) and is no
                // longer outstanding: a duplicate or a late answer. Above, it was never sent.
                if seq < self.next_seq { rec.unsolicited() } else { rec.unmatched() }
            }
            return;
        };
        self.outstanding[i].answered = true;
        let h = self.outstanding[i].header();
        while self.outstanding.front().is_some_and(|p| p.answered) {
            self.outstanding.pop_front();
        }
        if h.seq == 0 {
            wsbench_core::hist::record_ns(&mut self.shared.first_message.borrow_mut(), now.saturating_sub(h.sent_ns));
        }
        self.unflushed -= 1;
        let mut rec = self.shared.recorder.borrow_mut();
        if !h.warmup {
            rec.received(now.saturating_sub(h.intended_ns), now.saturating_sub(h.sent_ns));
            if now >= self.window_end {
                rec.late();
            }
        }
        drop(rec);
        if self.schedule.is_none() && self.sending {
            self.credits += 1;
        }
    }

    /// Gives up on the messages still outstanding when the connection ends (drain timeout,
    /// dropped connection, interrupt): each measured one is counted as unanswered and recorded at
    /// the age it has reached now, a lower bound on its latency. Runs once, after the hot path.
    pub fn give_up_outstanding(&mut self) {
        self.flush();
        if self.outstanding.is_empty() && self.beyond == 0 {
            return;
        }
        let now = now_ns();
        let tl = self.shared.timeline;
        let mut rec = self.shared.recorder.borrow_mut();
        let left = self.outstanding.iter().filter(|p| !p.answered);
        for h in left.clone().map(|p| p.header()).filter(|h| !h.warmup) {
            rec.unanswered(now.saturating_sub(h.intended_ns), now.saturating_sub(h.sent_ns));
        }
        if let Some(s) = self.schedule {
            // Their send times were not kept: their age since the intended time stands for
            // both (sent no earlier than intended, so never less than the age since sending).
            let mut seq = self.beyond_next;
            for _ in 0..self.beyond {
                let intended = s.intended(seq.saturating_sub(self.k0));
                seq = self.seq_after(seq);
                if !tl.is_warmup(intended) {
                    rec.unanswered(now.saturating_sub(intended), now.saturating_sub(intended));
                }
            }
        }
        rec.pending(self.slot, -((left.count() as u64 + self.beyond) as i64), u64::MAX);
        self.outstanding.clear();
        self.beyond = 0;
    }

    /// Messages sent and not yet answered or given up.
    #[inline]
    pub fn outstanding_len(&self) -> u64 {
        self.outstanding.len() as u64 + self.beyond
    }

    /// When the oldest message outstanding was sent, `None` when none is (a message beyond the
    /// ring counts from its intended time, earlier than it was sent).
    #[inline]
    pub fn oldest_sent(&self) -> Option<u64> {
        match (self.outstanding.front(), self.schedule) {
            (Some(p), _) => Some(p.sent_ns),
            (None, Some(s)) if self.beyond > 0 => Some(s.intended(self.beyond_next.saturating_sub(self.k0))),
            _ => None,
        }
    }

    /// The intended time of the oldest message outstanding, `u64::MAX` when none is.
    fn oldest_intended(&self) -> u64 {
        match (self.outstanding.front(), self.schedule) {
            (Some(p), _) => p.intended_ns,
            (None, Some(s)) if self.beyond > 0 => s.intended(self.beyond_next.saturating_sub(self.k0)),
            _ => u64::MAX,
        }
    }

    /// The number of the message sent after message `seq`.
    fn seq_after(&self, seq: u64) -> u64 {
        if seq + 1 == self.skipped.0 {
            self.skipped.1
        } else {
            seq + 1
        }
    }

    /// The header of the oldest message sent beyond the ring, which `data` answers: rebuilt
    /// from the schedule, with the send time `data` carries when it is plausible (no earlier
    /// than intended, not in the future), so a mangled echo still fails the check.
    fn take_beyond(&mut self, data: &[u8]) -> Option<MessageHeader> {
        let s = self.schedule.filter(|_| self.beyond > 0)?;
        let seq = self.beyond_next;
        self.beyond -= 1;
        self.beyond_next = self.seq_after(seq);
        let intended_ns = s.intended(seq.saturating_sub(self.k0));
        let echoed = MessageHeader::decode(data).map_or(0, |h| h.sent_ns);
        let sent_ns = if (intended_ns..=now_ns()).contains(&echoed) { echoed } else { intended_ns };
        Some(MessageHeader { seq, intended_ns, sent_ns, warmup: self.shared.timeline.is_warmup(intended_ns) })
    }

    /// Marks the first finished connection of the worker (see
    /// [`ConnShared::allocations_at_first_finish`]); called before closing.
    pub fn note_finish(&self) {
        if self.shared.allocations_at_first_finish.get().is_none() {
            self.shared.allocations_at_first_finish.set(Some(self.shared.hot_allocations()));
        }
    }

    /// A dropped connection: counted as an error and reported to the fleet with its cause.
    pub fn report_drop(&self, cause: &str) {
        self.shared.recorder.borrow_mut().error();
        (self.shared.on_drop)(cause.to_owned());
    }
}

/// A message sent and not yet given up on: its header's fields, flattened so that the flag
/// fits in the header's padding (32 bytes a message in every connection's ring, not 40).
#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    intended_ns: u64,
    sent_ns: u64,
    warmup: bool,
    /// Template loads: its reply came while an older message was still outstanding (replies
    /// may come in any order; answered messages leave the ring once they reach its front).
    answered: bool,
}

impl Pending {
    #[inline]
    fn new(h: MessageHeader) -> Self {
        Self { seq: h.seq, intended_ns: h.intended_ns, sent_ns: h.sent_ns, warmup: h.warmup, answered: false }
    }

    #[inline]
    fn header(&self) -> MessageHeader {
        MessageHeader { seq: self.seq, intended_ns: self.intended_ns, sent_ns: self.sent_ns, warmup: self.warmup }
    }
}

/// A connection's part of a template load.
struct ForeignConn {
    correlator: Correlator,
    rng: fastrand::Rng,
    /// `{conn}`: the connection's number within the process.
    conn: u32,
}

/// A well-mixed 64-bit hash (SplitMix64's finalizer): lifetimes' jitter without a random crate.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The waiting half of a connection's loop, the same for both transports: it watches for a stop,
/// registers the session's next deadline with the worker's [`crate::pacer::SendClock`], and waits
/// for whichever comes first of a stop, the transport's I/O and that deadline.
///
/// A stop is looked for with one load of the watch's version per turn, not a `changed()`
/// future per turn (which takes the watch's waiter lock twice): every waiting connection has
/// its waker with the clock, and the worker wakes them all when the stop comes
/// ([`crate::pacer::SendClock::wake_all`]).
pub struct Turns {
    stop_rx: tokio::sync::watch::Receiver<Option<Stop>>,
    stopped: bool,
    /// The session's next deadline, as of the last [`Self::arm`].
    deadline: u64,
    /// A message is due already: the next wait yields instead of arming the timer.
    behind: bool,
}

/// What one wait ended with.
pub enum Turn<T> {
    /// The transport's I/O finished with this.
    Io(T),
    /// A stop arrived or the timer fired: go round the loop again.
    Again,
    /// The connection cannot go on.
    End(ConnEnd),
}

impl Turns {
    /// Starts watching for a stop, applying one that was requested before the task first ran.
    pub fn new(session: &mut Session<'_>) -> Self {
        let mut stop_rx = session.shared.stop.clone();
        let stopped = match *stop_rx.borrow_and_update() {
            Some(stop) => {
                session.apply_stop(stop);
                true
            }
            None => false,
        };
        Self { stop_rx, stopped, deadline: 0, behind: false }
    }

    /// Takes the session's next deadline for the coming wait, unless a message is due already
    /// (the wait then only yields to the worker's other connections and reads what has arrived).
    pub fn arm(&mut self, session: &Session<'_>) {
        self.behind = session.is_behind();
        if !self.behind {
            self.deadline = session.next_deadline();
        }
    }

    /// Waits for a stop, `io`, or (when `timer_on`) the deadline, in that order of preference.
    pub async fn wait<T>(&mut self, session: &mut Session<'_>, timer_on: bool, io: impl Future<Output = T>) -> Turn<T> {
        session.flush();
        if !self.stopped {
            let changed = self.stop_rx.has_changed();
            if !matches!(changed, Ok(false)) {
                self.stopped = true;
                // A dropped sender (control thread gone) is a stop as well.
                let stop = changed.ok().and_then(|_| *self.stop_rx.borrow_and_update());
                session.apply_stop(stop.unwrap_or(Stop { at_ns: now_ns(), drain_until_ns: now_ns() }));
                return Turn::Again;
            }
        }
        let shared: &ConnShared = session.shared;
        let slot = session.slot;
        tokio::select! {
            biased;
            io = io => Turn::Io(io),
            // Behind schedule: yield once (other connections run, the reactor is polled), then
            // send the next batch. Never a busy loop, and never a wait for a timer already past.
            _ = tokio::task::yield_now(), if timer_on && self.behind => Turn::Again,
            r = shared.clock.wait(slot, self.deadline), if timer_on && !self.behind => match r {
                Err(e) => Turn::End(ConnEnd::Dropped(format!("cannot arm the timerfd: {e}"))),
                Ok(()) => Turn::Again,
            },
            // Timer off (the transport waits to write): only a stop can wake it besides the I/O.
            () = shared.clock.wait_for_stop(slot), if !timer_on => Turn::Again,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection holds a ring of these, sized for a second of its sends: an entry stays
    /// as small as the header it keeps.
    #[test]
    fn outstanding_entries_are_a_header_long() {
        assert_eq!(std::mem::size_of::<Pending>(), std::mem::size_of::<MessageHeader>());
        let h = MessageHeader { seq: 7, intended_ns: 1, sent_ns: 2, warmup: true };
        assert_eq!(Pending::new(h).header(), h);
        assert!(!Pending::new(h).answered);
    }
}
