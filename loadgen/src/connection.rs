//! One WebSocket connection: opening it, and the loop that sends, receives, checks and records.
//!
//! Each connection is one task that waits, with `tokio::select!`, for whichever comes first: a
//! stop request, socket I/O (an incoming frame, or the end of a pending flush), or its deadline
//! timer (its worker's [`SendClock`]). Sending happens in the loop body, never inside a select arm, so a send is
//! never half-done when another arm wins. Messages are handed to the sink one by one (buffered by
//! tungstenite) and flushed once per batch; while a flush is pending the task keeps reading, so a
//! server that blocks on writing its echoes to us can never deadlock with us blocking on writing
//! to it.
//!
//! The hot path allocates nothing: a message is built in the connection's reused `BytesMut`
//! (tungstenite copies it into its write buffer and drops our handle, so the next `reserve`
//! reclaims the same memory), the filler is copied from a pattern built once, echoes are checked
//! against the oldest outstanding message in a ring sized up front for a second of backlog, and
//! recording goes into the worker's pre-sized histograms. tungstenite's own buffers are kept
//! from growing mid-run too: reads are capped ([`CappedReads`]), and in open loop, where a
//! backlog after a stall is sent in one go, each frame is written at once instead of gathered
//! into a write buffer that would grow to the largest backlog ever seen.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use wsbench_core::clock::now_ns;
use wsbench_core::header::HEADER_LEN;
use wsbench_core::plan::Mode;

use crate::capped::{read_cap, CappedReads};
use crate::client::{ConnectError, ConnectTimes};
use crate::pacer::SendClock;
use crate::recorder::Recorder;
use crate::schedule::Timeline;
use crate::session::{Session, Turn, Turns};
use crate::transport::{Target, Transport};

/// A client connection as the load generator uses it.
pub type WsStream = WebSocketStream<CappedReads<Transport>>;

/// Read buffer per connection: tungstenite's default 128 KiB is zero-filled on every read and
/// costs a quarter of small-message throughput.
const READ_BUFFER: usize = 8 << 10;
/// Bound on the closing handshake at the end of a run.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens one connection: the transport ([`Target::open`]), then the WebSocket handshake.
/// `open_loop` connections write each frame as it is handed over (see the module docs).
pub async fn connect(target: &Target, size: u64, open_loop: bool) -> Result<(WsStream, ConnectTimes), ConnectError> {
    let url = target.url.as_str();
    let (transport, open) = target.open().await?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let defaults = WebSocketConfig::default();
    let mut config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(defaults.max_message_size.unwrap_or(0).max(size)))
        .max_frame_size(Some(defaults.max_frame_size.unwrap_or(0).max(size)));
    if open_loop {
        // Messages go out one by one as they fall due anyway; after a stall the backlog then
        // goes out frame by frame instead of growing the write buffer to hold all of it.
        config = config.write_buffer_size(0);
    }
    // Echoes are as large as what we send; a frame adds at most 14 bytes of header.
    let max_read = read_cap(READ_BUFFER, size.saturating_add(14)).unwrap_or(READ_BUFFER);
    let mut stream = CappedReads::new(transport, max_read);
    let head = stream.capture_head();
    let request = target.request().map_err(|e| ConnectError::new("bad URL", format!("`{url}` is not a WebSocket URL: {e}")))?;
    // tungstenite writes the request and reads the response in one future: its time is both.
    let t0 = now_ns();
    let (mut ws, response) = tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await.map_err(|e| {
        let failed = |what: &dyn std::fmt::Display| format!("WebSocket handshake with {url} failed: {what}");
        // A response that is not a 101 gets the zero-alloc engine's words, whatever tungstenite
        // objected to first (an HTTP/1.0 answer fails its version check before its status).
        let head = head.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = status_of(&head) {
            return ConnectError::new(status.cause(), failed(&status));
        }
        match &e {
            WsError::Io(io) => ConnectError::io(io, failed(&e)),
            WsError::Protocol(tokio_tungstenite::tungstenite::error::ProtocolError::HandshakeIncomplete) => ConnectError::new("closed", failed(&e)),
            other => ConnectError::new(format!("handshake error: {other}"), failed(&e)),
        }
    })?;
    let handshake_ns = now_ns() - t0;
    ws.get_mut().end_capture();
    let subprotocol = response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok((ws, ConnectTimes { connect_ns: open.connect_ns, tls_ns: open.tls_ns, handshake_ns, subprotocol, deflate: None }))
}

/// The response's status when it is a whole status line other than 101.
fn status_of(head: &[u8]) -> Option<crate::zero::BadResponse> {
    let mut headers = [httparse::EMPTY_HEADER; 0];
    let mut resp = httparse::Response::new(&mut headers);
    // Too many headers for the empty array is fine: the status line was parsed by then.
    let _ = resp.parse(head);
    let code = resp.code.filter(|&c| c != 101)?;
    Some(crate::zero::BadResponse::Status(code, resp.reason.unwrap_or("").to_owned()))
}

/// The filler after the header, precomputed once per connection.
///
/// [`wsbench_core::header::fill_payload`] computes every byte (`'a' + (seq + i) % 26`); the same
/// bytes are a window into one repeating alphabet, so a message's filler is a slice of a pattern
/// built once, copied (and compared) with `memcpy`/`memcmp` speed. Tests check both agree.
#[derive(Debug, Clone)]
pub struct Filler {
    pattern: Vec<u8>,
    size: usize,
}

impl Filler {
    pub fn new(size: usize) -> Self {
        assert!(size >= HEADER_LEN);
        Self { pattern: (0..size + 26).map(|j| b'a' + (j % 26) as u8).collect(), size }
    }

    /// The bytes following the header in message `seq`.
    #[inline]
    pub fn tail(&self, seq: u64) -> &[u8] {
        let start = (seq % 26) as usize;
        &self.pattern[start + HEADER_LEN..start + self.size]
    }

    /// True when `msg` has the right length and the filler of message `seq`.
    #[inline]
    pub fn matches(&self, msg: &[u8], seq: u64) -> bool {
        msg.len() == self.size && msg[HEADER_LEN..] == *self.tail(seq)
    }
}

/// When this process's messages are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SendMode {
    /// Keep `in_flight` messages outstanding per connection.
    Closed { in_flight: u32 },
    /// Send `rate` messages per second over all `connections` of the process; a shard sends
    /// its part of the whole load's schedule (`span`).
    /// On a ramp (`ramp`), `rate` is its peak, which sizes buffers.
    Open { rate: f64, connections: u32, span: Option<crate::schedule::ShardSpan>, ramp: Option<&'static crate::schedule::Ramp> },
}

/// What every connection of a worker shares.
pub struct ConnShared {
    pub timeline: Timeline,
    pub size: usize,
    pub mode: Mode,
    pub send_mode: SendMode,
    pub recorder: RefCell<Recorder>,
    /// The payload pattern after the header, shared by the worker's connections.
    pub filler: Filler,
    /// The worker's one timer: every connection's send and drain deadlines.
    pub clock: SendClock,
    /// Set once by the control thread: stop sending, drain until the given instant, close.
    pub stop: watch::Receiver<Option<Stop>>,
    /// Called when the peer drops a connection (or its I/O fails), with a description of how.
    pub on_drop: Box<dyn Fn(String)>,
    /// The worker thread's allocation count when its first connection finished its share,
    /// taken before that connection closes: the closing handshake allocates (tungstenite builds
    /// the close frame in a fresh buffer), and it is the end of the run, not its steady state.
    pub allocations_at_first_finish: Cell<Option<u64>>,
    /// Each connection's first round trip, in ns (pre-sized: recording allocates nothing).
    pub first_message: RefCell<hdrhistogram::Histogram<u64>>,
    /// Template loads: the template and the correlation rule (tungstenite client only).
    pub foreign: Option<crate::template::Foreign>,
    /// permessage-deflate byte counts, added by each connection as it ends.
    pub compression: Cell<crate::setup::CompressionCounts>,
    /// Churn settings (off by default) and the bound on waiting for a replaced connection's
    /// echoes before it closes (the drain timeout).
    pub churn: wsbench_core::plan::Churn,
    pub churn_drain_ns: u64,
    /// Where replacement connections go.
    pub target: std::sync::Arc<Target>,
    /// What churn did on this worker.
    pub churn_tally: RefCell<crate::churn::ChurnTally>,
    /// Allocations this worker thread made replacing connections ([`crate::churn::counted`]).
    pub churn_allocations: Cell<u64>,
    /// The zero-alloc engine's buffers are sized for this many messages per batch
    /// ([`crate::zero::expected_batch`]), replacements' as the first connections'.
    pub batch: usize,
    /// Connection ramps: the open count over time and who sends what (`None`: no ramp).
    pub connection_ramp: Option<&'static crate::schedule::ConnectionRamp>,
    /// Kernel receive timestamps: asked for (`--rx-timestamps kernel`), and the worker's
    /// conversion of them and counts.
    pub rx_kernel: bool,
    pub rx: crate::rxstamp::RxClock,
}

impl ConnShared {
    /// This thread's allocations so far, less those made replacing connections: what the
    /// per-message figure counts.
    pub fn hot_allocations(&self) -> u64 {
        wsbench_core::alloc::thread_allocations().saturating_sub(self.churn_allocations.get())
    }
}

/// A request to end the run early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// When the request was made: the end of the measured window.
    pub at_ns: u64,
    /// Outstanding echoes are awaited until this instant, then counted as lost.
    pub drain_until_ns: u64,
}

/// How a connection's loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEnd {
    /// Sent everything, drained, closed normally.
    Finished,
    /// The peer closed or reset the connection, or I/O failed; the text says how.
    Dropped(String),
    /// A connection ramp closed the place (cleanly, counted then) and does not open it again
    /// before the window ends.
    Retired,
}

/// What the socket had to say.
enum Io {
    Frame(Message),
    /// A pending flush completed after the sink had pushed back: sending may resume.
    Writable,
    Failed(String),
}

/// One tungstenite connection: the transport around its [`Session`].
struct Connection<'a> {
    session: Session<'a>,
    ws: WsStream,
    buf: BytesMut,
    /// Messages were handed to the sink since the last completed flush.
    want_flush: bool,
    /// The sink pushed back; nothing is sent until a flush completes.
    blocked: bool,
}

/// Frames read per turn at most after the one that ended a wait: whatever tungstenite can parse
/// without waiting, so receiving keeps pace with a sender working off a backlog.
const READ_BATCH: usize = 256;

/// Runs connection number `index` (of the process's open connections; `slot` of its worker)
/// until it has sent its share, drained and closed, or until the peer drops it.
pub async fn run(ws: WsStream, index: u32, slot: usize, shared: &ConnShared) -> ConnEnd {
    let mut conn = Connection {
        session: Session::new(shared, index, slot),
        ws,
        // Room for a few messages, so one allocation serves several sends even when an earlier
        // message is still referenced; `reserve` reclaims it once tungstenite has copied them.
        buf: BytesMut::with_capacity(shared.size.max(4 << 10)),
        want_flush: false,
        blocked: false,
    };
    let end = loop {
        match conn.run_loop().await {
            Step::End(end) => break end,
            Step::Churn => match conn.replace().await {
                Ok(true) => {}
                Ok(false) => break ConnEnd::Retired,
                Err(cause) => break ConnEnd::Dropped(cause),
            },
        }
    };
    conn.session.give_up_outstanding();
    match &end {
        ConnEnd::Finished => {
            conn.session.note_finish();
            conn.close().await;
        }
        ConnEnd::Dropped(cause) => {
            // Let tungstenite send its reply to a close frame; a reset connection fails at once.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), conn.ws.flush()).await;
            conn.session.report_drop(cause);
        }
        // Closing a retired place is the ramp's, counted with it.
        ConnEnd::Retired => crate::churn::counted_drop(&shared.churn_allocations, conn),
    }
    end
}

/// How one connection's loop ended: the place's end, or churn (replace the connection).
pub(crate) enum Step {
    End(ConnEnd),
    Churn,
}

impl From<ConnEnd> for Step {
    fn from(end: ConnEnd) -> Self {
        Step::End(end)
    }
}

impl Connection<'_> {
    async fn run_loop(&mut self) -> Step {
        let mut turns = Turns::new(&mut self.session);
        loop {
            if !self.blocked {
                if let Err(cause) = self.send_due() {
                    return ConnEnd::Dropped(cause).into();
                }
            }
            if self.session.is_done() {
                return ConnEnd::Finished.into();
            }
            if self.session.wants_reconnect() {
                return Step::Churn;
            }
            turns.arm(&self.session);
            // While the sink pushes back, a past send deadline would fire on every turn: wait
            // for the flush instead.
            let timer_on = !(self.session.sending && self.blocked);

            let batch_reads = !self.session.is_open_loop();
            let (ws, want_flush, blocked) = (&mut self.ws, &mut self.want_flush, &mut self.blocked);
            let io = match turns.wait(&mut self.session, timer_on, poll_fn(|cx| poll_io(ws, want_flush, blocked, batch_reads, cx))).await {
                Turn::Io(io) => io,
                Turn::Again => continue,
                Turn::End(end) => return end.into(),
            };
            match io {
                Io::Frame(msg) => {
                    if let Some(end) = self.on_frame(msg) {
                        return end.into();
                    }
                    if let Some(end) = self.read_ready() {
                        return end.into();
                    }
                }
                Io::Writable => {}
                Io::Failed(cause) => return ConnEnd::Dropped(cause).into(),
            }
        }
    }

    /// Handles the frames that are already readable, up to [`READ_BATCH`], without waiting;
    /// `Some` ends the connection.
    fn read_ready(&mut self) -> Option<ConnEnd> {
        // A no-op waker: the next wait polls the stream again with the task's own.
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        for _ in 0..READ_BATCH {
            match self.ws.poll_next_unpin(&mut cx) {
                Poll::Ready(Some(Ok(msg))) => {
                    if let Some(end) = self.on_frame(msg) {
                        return Some(end);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Some(ConnEnd::Dropped(describe_error(&e))),
                Poll::Ready(None) => return Some(ConnEnd::Dropped("connection closed".into())),
                Poll::Pending => break,
            }
        }
        None
    }

    /// Sends the messages that are due now, one batch. Returns early when the sink pushes back;
    /// the rest goes once the flush completes.
    fn send_due(&mut self) -> Result<(), String> {
        self.session.start_batch();
        while let Some(intended) = self.session.next_due() {
            if !self.send_one(intended)? {
                break;
            }
        }
        Ok(())
    }

    /// Builds and hands one message to the sink. Returns false when the sink pushed back
    /// (nothing was sent).
    fn send_one(&mut self, intended: Option<u64>) -> Result<bool, String> {
        // Readiness is checked without registering interest: when the sink is not ready the
        // pending flush in `poll_io` registers it.
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        match self.ws.poll_ready_unpin(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Err(describe_error(&e)),
            Poll::Pending => {
                self.blocked = true;
                self.want_flush = true;
                return Ok(false);
            }
        }
        let header = if self.session.is_foreign() {
            // The template's `{ts_ns}` is the intended time; in closed loop, now.
            let ts = intended.unwrap_or_else(now_ns);
            self.session.render(&mut self.buf, ts);
            self.session.header(Some(ts), now_ns())
        } else {
            let size = self.session.shared.size;
            self.buf.reserve(size);
            self.buf.extend_from_slice(&[0u8; HEADER_LEN]);
            self.buf.extend_from_slice(self.session.filler.tail(self.session.next_seq()));
            // The actual send time is read as late as possible: right before the hand-over.
            let header = self.session.header(intended, now_ns());
            header.encode(&mut self.buf[..HEADER_LEN]);
            header
        };
        let bytes = self.buf.split().freeze();
        let msg = match self.session.shared.mode {
            Mode::Binary => Message::Binary(bytes),
            Mode::Text => Message::Text(text(bytes)),
        };
        self.ws.start_send_unpin(msg).map_err(|e| describe_error(&e))?;
        self.want_flush = true;
        self.session.sent(header);
        Ok(true)
    }

    /// Handles one incoming frame; `Some` ends the connection.
    fn on_frame(&mut self, msg: Message) -> Option<ConnEnd> {
        let now = now_ns();
        let (data, is_text): (&[u8], bool) = match &msg {
            Message::Binary(b) => (b, false),
            Message::Text(t) => (t.as_bytes(), true),
            Message::Close(frame) => return Some(ConnEnd::Dropped(describe_close(frame.as_ref()))),
            // tungstenite answers pings itself; pongs and raw frames carry nothing for us.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return None,
        };
        self.session.on_echo(data, is_text, now);
        None
    }

    /// Churn: closes the connection (1000, the reply awaited for [`CLOSE_TIMEOUT`] at most)
    /// and opens a new one in its place (a connection ramp's when the ramp reaches it again);
    /// `Ok(false)`: the ramp keeps the place closed; `Err` names why the place ends (the
    /// replacement could not be opened). Echoes still outstanding are counted as unanswered first.
    async fn replace(&mut self) -> Result<bool, String> {
        let shared = self.session.shared;
        crate::churn::counted(&shared.churn_allocations, self.replace_uncounted()).await
    }

    async fn replace_uncounted(&mut self) -> Result<bool, String> {
        let shared = self.session.shared;
        self.session.give_up_outstanding();
        let outcome = close_and_wait(&mut self.ws).await;
        shared.churn_tally.borrow_mut().closed(&outcome);
        if !crate::churn::until_reopen(shared, self.session.reopen_at()).await {
            return Ok(false);
        }
        let open_loop = self.session.is_open_loop();
        let target = &*shared.target;
        let opened = tokio::time::timeout(crate::fleet::CONNECT_TIMEOUT, connect(target, shared.size as u64, open_loop)).await;
        let now = now_ns();
        match opened {
            Ok(Ok((ws, times))) => {
                let window = crate::fleet::window_end(&shared.timeline, *shared.stop.borrow());
                shared.churn_tally.borrow_mut().opened(&times, now >= shared.timeline.measured_start_ns && now < window);
                self.ws = ws;
                self.want_flush = false;
                self.blocked = false;
                self.session.reconnected(now);
                Ok(true)
            }
            Ok(Err(e)) => {
                shared.churn_tally.borrow_mut().failed(e.cause.clone());
                Err(format!("replacement connection failed: {}", e.cause))
            }
            Err(_) => {
                shared.churn_tally.borrow_mut().failed("timeout".into());
                Err("replacement connection failed: timeout".into())
            }
        }
    }

    /// Normal closure (1000), waiting a bounded time for the server's reply.
    async fn close(&mut self) {
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: Utf8Bytes::from_static("") })).await.is_err() {
                return;
            }
            // Read until the server closes the TCP connection; late echoes are ignored.
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
}

/// Sends a close frame with 1000 and reads until the server's reply and the end of the
/// connection, within [`CLOSE_TIMEOUT`]; late echoes are ignored.
async fn close_and_wait(ws: &mut WsStream) -> crate::churn::CloseOutcome {
    use crate::churn::CloseOutcome;
    let r = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if let Err(e) = ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: Utf8Bytes::from_static("") })).await {
            return CloseOutcome::Failed(describe_error(&e));
        }
        let mut reply = None;
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => reply = Some(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => break,
                Some(Err(e)) if reply.is_none() => return CloseOutcome::Failed(describe_error(&e)),
                // A reset after the reply: the close handshake itself was complete.
                Some(Err(_)) => break,
            }
        }
        reply.map_or(CloseOutcome::NoReply, CloseOutcome::Replied)
    })
    .await;
    r.unwrap_or(CloseOutcome::TimedOut(CLOSE_TIMEOUT))
}

/// Polls the socket for the next thing worth reporting: an incoming frame, a failure, or the
/// end of a flush that sending was blocked on. Both halves are cancel-safe, so dropping this
/// future in `select!` loses nothing.
///
/// Open loop flushes first, so a message goes out as soon as it is due. Closed loop reads every
/// echo already received first and flushes the messages they released in one write: one syscall
/// per batch instead of per message, which is what lets pipelined connections go fast. A sink
/// that pushed back is flushed first in either case.
fn poll_io(ws: &mut WsStream, want_flush: &mut bool, blocked: &mut bool, batch_reads: bool, cx: &mut Context<'_>) -> Poll<Io> {
    let flush_first = !batch_reads || *blocked;
    if flush_first {
        if let Some(io) = poll_flush(ws, want_flush, blocked, cx) {
            return Poll::Ready(io);
        }
    }
    match ws.poll_next_unpin(cx) {
        Poll::Ready(Some(Ok(msg))) => return Poll::Ready(Io::Frame(msg)),
        Poll::Ready(Some(Err(e))) => return Poll::Ready(Io::Failed(describe_error(&e))),
        Poll::Ready(None) => return Poll::Ready(Io::Failed("connection closed".into())),
        Poll::Pending => {}
    }
    if !flush_first {
        if let Some(io) = poll_flush(ws, want_flush, blocked, cx) {
            return Poll::Ready(io);
        }
    }
    Poll::Pending
}

/// Drives a pending flush; `Some` when it has something to report.
fn poll_flush(ws: &mut WsStream, want_flush: &mut bool, blocked: &mut bool, cx: &mut Context<'_>) -> Option<Io> {
    if !*want_flush {
        return None;
    }
    match ws.poll_flush_unpin(cx) {
        Poll::Ready(Ok(())) => {
            *want_flush = false;
            std::mem::take(blocked).then_some(Io::Writable)
        }
        Poll::Ready(Err(e)) => Some(Io::Failed(describe_error(&e))),
        Poll::Pending => None,
    }
}

/// Wraps bytes built from the header and the filler, or rendered from a template, as a text payload.
fn text(bytes: Bytes) -> Utf8Bytes {
    debug_assert!(std::str::from_utf8(&bytes).is_ok());
    // SAFETY: a wsbench message's bytes are all below 0x80 (the header stores 7-bit groups and
    // ASCII flags, the filler is lower-case letters); a template is a `String` whose
    // placeholders render ASCII digits and letters. Either way the bytes are valid UTF-8.
    // Validating each message again would cost a pass over it on the hot path.
    unsafe { Utf8Bytes::from_bytes_unchecked(bytes) }
}

/// How a failed connection ended, in words a user can act on.
pub fn describe_error(e: &WsError) -> String {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match e {
        WsError::Io(io) => describe_io_error(io),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => "connection closed without a close frame".into(),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "connection closed".into(),
        other => format!("WebSocket error: {other}"),
    }
}

/// A failed socket operation, in the same words for both engines.
pub fn describe_io_error(io: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match io.kind() {
        ErrorKind::ConnectionReset => "connection reset".into(),
        ErrorKind::BrokenPipe => "connection reset (broken pipe)".into(),
        ErrorKind::ConnectionAborted => "connection aborted".into(),
        ErrorKind::UnexpectedEof => "connection closed without a close frame".into(),
        _ => format!("I/O error: {io}"),
    }
}

/// `close 1001 going away` and the like.
pub fn describe_close(frame: Option<&CloseFrame>) -> String {
    describe_close_code(frame.map(|f| u16::from(f.code)))
}

/// As [`describe_close`], from the status code alone (`None`: a close frame without one).
pub fn describe_close_code(code: Option<u16>) -> String {
    let Some(code) = code else {
        return "close frame without a code".into();
    };
    let name = match code {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1007 => "invalid payload",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "extension required",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        _ => "",
    };
    if name.is_empty() { format!("close {code}") } else { format!("close {code} {name}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench_core::header::{fill_payload, payload_matches};

    #[test]
    fn a_response_other_than_101_is_named_by_its_status() {
        let plain = status_of(b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\nContent-Type: text/html\r\n\r\n").unwrap();
        assert_eq!(plain.to_string(), "the server answered 200 OK instead of 101 Switching Protocols");
        assert_eq!(plain.cause(), "HTTP status 200");
        assert_eq!(status_of(b"HTTP/1.1 503 Service Unavailable\r\n").unwrap().cause(), "HTTP status 503");
        assert!(status_of(b"HTTP/1.1 101 Switching Protocols\r\n").is_none());
        assert!(status_of(b"HTTP/1.1 2").is_none(), "a partial status line names nothing");
        assert!(status_of(b"").is_none());
    }

    #[test]
    fn filler_agrees_with_core() {
        for size in [HEADER_LEN, HEADER_LEN + 1, 100, 4096 + 7] {
            let f = Filler::new(size);
            for seq in [0u64, 1, 25, 26, 27, 12345, u64::MAX] {
                let mut core = vec![0u8; size];
                fill_payload(&mut core, seq);
                let mut ours = vec![0u8; HEADER_LEN];
                ours.extend_from_slice(f.tail(seq));
                assert_eq!(core[HEADER_LEN..], ours[HEADER_LEN..], "size {size} seq {seq}");
                assert!(f.matches(&core, seq));
                assert!(payload_matches(&ours, seq));
                if size > HEADER_LEN {
                    assert!(!f.matches(&core, seq.wrapping_add(1)));
                }
                assert!(!f.matches(&core[..size - 1], seq), "length is checked");
            }
        }
    }

    #[test]
    fn close_codes_read_well() {
        let f = CloseFrame { code: CloseCode::Away, reason: Utf8Bytes::from_static("bye") };
        assert_eq!(describe_close(Some(&f)), "close 1001 going away");
        let f = CloseFrame { code: CloseCode::from(4000), reason: Utf8Bytes::from_static("") };
        assert_eq!(describe_close(Some(&f)), "close 4000");
        assert_eq!(describe_close(None), "close frame without a code");
    }
}
