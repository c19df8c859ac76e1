//! The zero-allocation engine: wsbench-core's frame codec on the raw socket, with shared buffers.
//!
//! This module owns the WebSocket side of a connection after the upgrade: reading, framing,
//! running the workload, answering pings and closes, failing on protocol errors, and going away
//! on shutdown. It must not allocate per message in steady state, must not hold a read buffer
//! per idle connection, and must not block its thread except at the pause safepoint.
//!
//! # Memory: shared buffers, small connections
//!
//! Each runtime worker thread owns one [`Scratch`] (a thread-local): a 64 KiB input buffer and
//! an output buffer. A connection waits for readability *without* a buffer
//! (`poll_read_ready`), and only once the socket is readable does it borrow its thread's scratch
//! for one synchronous *turn*: read once into the input buffer, parse every whole frame in
//! place, unmask it in place, handle it, append each reply to the output buffer, and write all
//! replies with one `write` at the end (feeding replies and flushing once: pipelined messages
//! leave in one syscall). The borrow never spans an `.await`, so the task may move between
//! threads freely and every connection on a thread shares the same 64 KiB.
//!
//! What a connection keeps between turns is only what cannot be dropped:
//!
//! - `partial`: the bytes of a frame cut off by the end of a read, copied back to the front of
//!   the input buffer on the next turn. Empty, and normally unallocated, while idle.
//! - a [`Spill`], allocated only while one of its buffers is in use and dropped when all are
//!   empty again, so an idle connection carries a null pointer for it:
//!   - `large`: a frame bigger than the input buffer, read straight into a buffer of its own as
//!     its bytes arrive (grown by a quarter at a time, never to the declared length up front),
//!     then unmasked and echoed in place (its reply header is written over the end of the
//!     client's longer, masked header);
//!   - `message`: the payload of a fragmented message, collected behind room for the reply's
//!     header so that it too is echoed in place, as one message;
//!   - `outbox`: replies the socket would not take yet. Reading goes on while they are fewer
//!     than `--max-write-buffer` bytes and the client is closed (1008) past it; an echo built
//!     in place is written before anything more is read.
//!   - `kept`: once an echo built in place is written (or a large message needed no echo),
//!     its buffer is kept, empty, for the next large frame or fragmented message, so that a
//!     connection streaming large messages allocates only for its first (and for a larger
//!     one), rather than regrowing from nothing and faulting in fresh pages each time. One
//!     buffer is kept (the largest), charged to the budget like the rest, and only while the
//!     budget is at most half spent; it is given back when the connection has been quiet for
//!     `--park-after` (by parking, or, for a connection that is never parked, after the same
//!     time or 1 s when parking is off), and once after the budget has refused anyone: at the
//!     connection's next turn, or when its buffer comes back from the message that used it.
//!
//! # Limits
//!
//! What `partial`, `large`, `message`, `kept` and an in-place echo hold is charged to the
//! server's message budget (`--max-buffered`, see `limits`): before a large frame's or a
//! fragmented message's buffer grows, and once per turn for the rest; the connection that
//! would go past it is closed with 1008. A kept buffer therefore never takes the server past
//! its bound, and kept buffers together hold at most half of it. One boxed timer per connection serves the read
//! timeout and the keep-alive (`limits::KeepAlive` decides; the timer is re-armed only when it
//! fires), and reading notes the time of the last input once per turn.
//!
//! Beyond that a connection is its task (whose size the `serve` functions keep small by moving
//! state into their futures once), its socket registration and a few words of codec state. A
//! plain echo or sink connection quiet for `--park-after` (1 s), with nothing half-read or
//! unwritten, ends its task with [`Turn::Park`] and leaves only its socket and keep-alive in the
//! server's lot ([`resume`] serves it again). A frame is copied only when a read cuts it.
//!
//! # permessage-deflate
//!
//! With `--deflate` negotiated (RFC 7692), a connection also holds a boxed [`Compression`]:
//! zlib state for each direction (wsbench-core's `deflate`) and their output buffers, kept up
//! to [`DEFLATE_KEEP`] between messages. A compressed message's frames are inflated as each
//! completes, into the inflate buffer (never past `--max-message-size`: a bomb is closed with
//! 1009 once the limit is inflated), its text validated as it inflates, and an echo is
//! compressed into the turn's output buffer with RSV1 set. Other replies (the alloc handler's,
//! broadcast deliveries) go out uncompressed, which RFC 7692 allows. The inflate and deflate
//! buffers count as held bytes against `--max-buffered`, checked once per turn.
//!
//! # Protocol
//!
//! Frame rules, fragmentation, UTF-8 and close payloads are wsbench-core's codec; this module
//! decides what to do: echo (through the workload seam, exactly as the tungstenite engine),
//! pong for ping, echo a close's status code and end the connection, and on a violation send
//! the close code the codec names (1002, 1007 or 1009), count a protocol error, and end. A data
//! frame cut by a read has what arrived of its payload unmasked and validated at once, so
//! invalid UTF-8 fails as soon as it arrives, not when its frame is complete. Ending means:
//! write what is queued, send FIN, then read and drop whatever the peer still sends until it
//! closes too, within [`CLOSE_WAIT`], so that the kernel does not answer unread input with a
//! reset that could destroy our close frame in flight.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use crate::transport::Stream;

use tokio::time::{sleep_until, timeout_at, Instant};
use wsbench_core::clock::now_ns;
use wsbench_core::codec::close::{self, code};
use wsbench_core::codec::deflate::{Agreement, Deflater, Inflater, RSV1};
use wsbench_core::codec::frame::{self, Frame, Opcode, Parsed};
use wsbench_core::codec::message::Completed;
use wsbench_core::codec::{
    mask, write, MessageAssembler, MessageKind, ProtocolError, Role, Step, MAX_CONTROL_PAYLOAD,
    MAX_HEADER_LEN,
};

use super::{ConnectionContext, Upgraded, CLOSE_WAIT};
use crate::limits::{Charge, Due, KeepAlive, LimitHit, OverBudget};
use crate::metrics::{ConnectionCounts, DeflateCounts, Metrics, OpenConnection};
use crate::park::{IdleConnection, PARK_AFTER};
use crate::shutdown::Shutdown;
use crate::workload::{AnyWorkload, DataKind, Reply, Workload};

/// Input buffer per worker thread. Frames up to this size are read and echoed from it;
/// larger ones get a buffer of their own while in flight.
const SCRATCH_LEN: usize = 64 * 1024;

/// Output buffer capacity a worker thread keeps between turns; a turn that needed more (a
/// large reply from an allocating workload) gives the excess back.
const OUT_KEEP: usize = 2 * SCRATCH_LEN;

/// A connection's `partial` buffer stays allocated while empty up to this capacity, so that
/// frames cut by reads under a steady load do not allocate each time; a larger one is freed.
const PARTIAL_KEEP: usize = 256;

/// Room kept in front of a fragmented message's payload for its reply header (an unmasked
/// header is at most 10 bytes).
const REPLY_HEADROOM: usize = MAX_HEADER_LEN - 4;

/// zlib's default level: the usual trade of ratio against CPU.
const DEFLATE_LEVEL: u32 = 6;

/// A connection's inflate and deflate output buffers stay allocated up to this capacity
/// between messages, so that compressing and inflating messages up to about this size
/// allocates nothing; larger ones free theirs after each message.
const DEFLATE_KEEP: usize = SCRATCH_LEN;

/// permessage-deflate state of one connection that negotiated it, allocated when it opens:
/// zlib's state for each direction, their reused output buffers, and counts not yet published.
struct Compression<'a> {
    inflater: Inflater,
    deflater: Deflater,
    counts: DeflateCounts,
    metrics: &'a Metrics,
}

impl<'a> Compression<'a> {
    fn new(agreed: &Agreement, max_message: usize, metrics: &'a Metrics) -> Self {
        Self {
            inflater: Inflater::new(
                agreed.client_max_window_bits,
                agreed.client_no_context_takeover,
                max_message,
            ),
            deflater: Deflater::new(
                agreed.server_max_window_bits,
                agreed.server_no_context_takeover,
                DEFLATE_LEVEL,
            ),
            counts: DeflateCounts::default(),
            metrics,
        }
    }

    fn held_bytes(&self) -> usize {
        self.inflater.buffer_capacity() + self.deflater.buffer_capacity()
    }
}

impl Drop for Compression<'_> {
    fn drop(&mut self) {
        self.metrics.add_deflate(&mut self.counts);
    }
}

/// The buffers one worker thread lends to whichever connection is taking its turn.
struct Scratch {
    input: Box<[u8]>,
    out: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        input: vec![0u8; SCRATCH_LEN].into_boxed_slice(),
        out: Vec::with_capacity(OUT_KEEP),
    });
}

/// What one turn came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Go on: wait for input (after writing the outbox, if it holds anything).
    Continue,
    /// The peer closed TCP without a close frame, or the socket failed: no one to tell.
    Gone,
    /// The peer sent a close frame; our answer is queued.
    Closed,
    /// The peer broke the protocol; our close frame is queued.
    Failed(ProtocolError),
    /// The server is shutting down.
    Shutdown,
    /// A limit ends the connection (memory, time or unread output).
    Limit(LimitHit),
    /// Quiet for `--park-after` with nothing in flight: the connection leaves its task for the
    /// server's lot.
    Park,
}

/// Why [`Connection::process`] stopped taking frames off the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// No whole frame left; the rest (if any) is a frame that needs this many bytes in all.
    NeedMore(usize),
    /// A reply went into the outbox in place; frames after it wait for the next turn, so the
    /// replies keep their order.
    Owned,
    /// A close frame was answered.
    Closed,
    Failed(ProtocolError),
    Limit(LimitHit),
}

/// What handling one frame asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    /// Nothing more (any reply is in the output buffer already).
    Done,
    /// The frame was a whole message and is echoed: the caller sends its payload back, from
    /// wherever the payload is.
    EchoFrame(MessageKind),
    /// A fragmented message completed and its echo is in the outbox.
    EchoedOwned,
    Closed,
    Failed(ProtocolError),
    Limit(LimitHit),
}

/// Replies the socket has not taken yet, in order: `copied` first, then `owned`.
#[derive(Debug, Default)]
struct Outbox {
    /// The rest of a turn's output buffer.
    copied: Vec<u8>,
    copied_pos: usize,
    /// A large echo built in place in a connection's own buffer.
    owned: Vec<u8>,
    owned_pos: usize,
}

impl Outbox {
    #[inline]
    fn is_empty(&self) -> bool {
        self.copied_pos == self.copied.len() && self.owned_pos == self.owned.len()
    }

    /// Writes everything out. `copied` is freed once written; `owned` is emptied but keeps its
    /// capacity, for the connection to keep or free (see [`Connection::keep`]).
    fn poll_flush(&mut self, stream: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.copied_pos += write_some(stream, cx, &self.copied[self.copied_pos..])?;
        if self.copied_pos < self.copied.len() {
            return Poll::Pending;
        }
        self.copied = Vec::new();
        self.copied_pos = 0;
        self.owned_pos += write_some(stream, cx, &self.owned[self.owned_pos..])?;
        if self.owned_pos < self.owned.len() {
            return Poll::Pending;
        }
        self.owned.clear();
        self.owned_pos = 0;
        Poll::Ready(Ok(()))
    }
}

/// The buffers a connection needs only for large frames, fragmented messages or
/// backpressure (see the module docs).
#[derive(Debug, Default)]
struct Spill {
    /// The bytes of a large frame received so far: grown as they arrive, never to the frame's
    /// declared length up front.
    large: Vec<u8>,
    /// The whole length (header and payload) of the frame in `large`.
    large_needed: usize,
    message: Vec<u8>,
    outbox: Outbox,
    /// An empty buffer kept from the last large or fragmented message, for the next one (see
    /// [`Connection::keep`]): charged to the budget, given back when the connection goes quiet
    /// or the budget refuses someone.
    kept: Vec<u8>,
    /// The budget's refusal count when the buffer now kept (or in use, taken from `kept`) was
    /// allocated: if the budget has refused anyone since, it is not kept again.
    kept_refusals: usize,
}

impl Spill {
    /// The kept buffer (empty, and possibly without capacity), for a large frame or a
    /// fragmented message about to begin; dates a fresh one to `refusals`.
    fn take_kept(&mut self, refusals: usize) -> Vec<u8> {
        if self.kept.capacity() == 0 {
            self.kept_refusals = refusals;
        }
        std::mem::take(&mut self.kept)
    }
}

impl Outbox {
    /// Bytes of copied replies not yet taken by the socket: what `--max-write-buffer` bounds.
    #[inline]
    fn copied_pending(&self) -> usize {
        self.copied.len() - self.copied_pos
    }

    /// An echo built in place is being written: nothing may be queued behind it in `copied`.
    #[inline]
    fn owned_pending(&self) -> bool {
        self.owned_pos < self.owned.len()
    }
}

impl Spill {
    fn is_unused(&self) -> bool {
        self.large.is_empty() && self.message.is_empty() && self.outbox.is_empty()
    }
}

/// Writes as much of `buf` as the socket takes now; `Ok(n)` with `n < buf.len()` means the
/// socket is full and `cx` will be woken when it drains.
fn write_some(stream: &mut Stream, cx: &mut Context<'_>, buf: &[u8]) -> io::Result<usize> {
    let mut pos = 0;
    while pos < buf.len() {
        match Pin::new(&mut *stream).poll_write(cx, &buf[pos..]) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => pos += n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => break,
        }
    }
    Ok(pos)
}

/// One read of at most `max` bytes appended to `buf`, into its spare capacity (which must
/// hold them): `Some(n)` bytes, or `None` at end of stream or on error.
fn read_append(
    stream: &mut Stream,
    cx: &mut Context<'_>,
    buf: &mut Vec<u8>,
    max: usize,
) -> Poll<Option<usize>> {
    let spare = &mut buf.spare_capacity_mut()[..max];
    let start = spare.as_ptr().cast::<u8>();
    let mut rb = ReadBuf::uninit(spare);
    let n = match Pin::new(stream).poll_read(cx, &mut rb) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Err(_)) => return Poll::Ready(None),
        Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(None),
        Poll::Ready(Ok(())) => rb.filled().len(),
    };
    // A reader could swap in a buffer of its own; then its bytes are not in ours.
    assert_eq!(
        start,
        rb.filled().as_ptr(),
        "the read went into another buffer"
    );
    // SAFETY: the read initialised the first `n` bytes of the spare capacity (ReadBuf tracks
    // what was filled, and it is our buffer, checked above), and `n <= max <= spare capacity`.
    unsafe { buf.set_len(buf.len() + n) };
    Poll::Ready(Some(n))
}

/// One read into `buf`: `Some(n)` bytes, or `None` at end of stream or on error.
fn read_some(stream: &mut Stream, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Option<usize>> {
    let mut rb = ReadBuf::new(buf);
    // On a short read tokio clears the read readiness itself, which saves the extra read that
    // would only say "would block" before the task parks.
    match Pin::new(stream).poll_read(cx, &mut rb) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(Err(_)) => Poll::Ready(None),
        Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(None),
        Poll::Ready(Ok(())) => Poll::Ready(Some(rb.filled().len())),
    }
}

/// The capacity a large frame's buffer grows to when `cap` cannot take `want` bytes: by a
/// quarter (at least 64 KiB), so that it holds at most a quarter (or 64 KiB) more than has
/// arrived while copies stay linear in the frame's length, and never past the frame's `needed`
/// length.
fn grown_capacity(cap: usize, want: usize, needed: usize) -> usize {
    (cap + (cap / 4).max(SCRATCH_LEN)).max(want).min(needed)
}

/// Appends a whole unmasked frame to `out`.
#[inline]
fn push_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = write::header(&mut head, true, opcode, payload.len(), None);
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(payload);
}

/// Appends a whole unmasked compressed frame (RSV1 set) to `out`.
#[inline]
fn push_compressed(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = write::header(&mut head, true, opcode, payload.len(), None);
    head[0] |= RSV1 << 4;
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and `reason` to `out`.
fn push_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut body = [0u8; MAX_CONTROL_PAYLOAD];
    let n = close::payload(&mut body, code, reason);
    push_frame(out, Opcode::Close, &body[..n]);
}

/// Writes the header of an unmasked, final `kind` frame with `payload_len` bytes so that it
/// ends at `buf[end]`, and returns where it starts. The caller guarantees room for it.
fn header_in_place(buf: &mut [u8], end: usize, kind: MessageKind, payload_len: usize) -> usize {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = write::header(&mut head, true, kind.opcode(), payload_len, None);
    buf[end - n..end].copy_from_slice(&head[..n]);
    end - n
}

fn data_kind(kind: MessageKind) -> DataKind {
    match kind {
        MessageKind::Text => DataKind::Text,
        MessageKind::Binary => DataKind::Binary,
    }
}

fn opcode_of(kind: DataKind) -> Opcode {
    match kind {
        DataKind::Text => Opcode::Text,
        DataKind::Binary => Opcode::Binary,
    }
}

/// One WebSocket connection's state between turns. See the module docs for what each buffer
/// holds and when it is allocated.
struct Connection<'a> {
    stream: Stream,
    ctx: &'a ConnectionContext,
    workload: AnyWorkload,
    counts: ConnectionCounts<'a>,
    assembler: MessageAssembler,
    partial: Vec<u8>,
    /// `partial` starts with whole frames still to process: the next turn must not wait to read.
    buffered: bool,
    /// The frame at the front of `partial` (or in `large`), if a read cut it and it has been
    /// begun: the assembler's verdict on its header, and how many of its payload bytes have
    /// been unmasked and fed to the assembler. (Two fields rather than one `Option` of a pair:
    /// the small one then fits in padding, and every byte here is a byte per connection.)
    begun: Option<Step>,
    begun_done: usize,
    spill: Option<Box<Spill>>,
    /// permessage-deflate, when negotiated.
    compression: Option<Box<Compression<'a>>>,
    /// This connection's share of the server's partial-message budget.
    charge: Charge<'a>,
    keep_alive: KeepAlive,
    /// This connection's place in the open-connections gauge, given back on drop.
    _open: OpenConnection<'a>,
}

impl<'a> Connection<'a> {
    fn new(
        stream: Stream,
        ctx: &'a ConnectionContext,
        leftover: &[u8],
        room: Option<u32>,
        deflate: Option<Agreement>,
        open: OpenConnection<'a>,
    ) -> Self {
        Self {
            stream,
            ctx,
            workload: ctx.open_workload(room),
            counts: ConnectionCounts::new(&ctx.metrics),
            assembler: MessageAssembler::new(ctx.max_message_size),
            // Bytes that came with the request head are processed before the first read.
            partial: leftover.to_vec(),
            buffered: !leftover.is_empty(),
            begun: None,
            begun_done: 0,
            spill: None,
            compression: deflate
                .map(|a| Box::new(Compression::new(&a, ctx.max_message_size, &ctx.metrics))),
            charge: Charge::new(&ctx.budget),
            keep_alive: KeepAlive::new(Instant::now()),
            _open: open,
        }
    }

    #[inline]
    fn spill(&mut self) -> &mut Spill {
        self.spill.get_or_insert_with(Box::default)
    }

    /// The reserved bits frames may carry: RSV1 once permessage-deflate is negotiated.
    #[inline]
    fn rsv_allowed(&self) -> u8 {
        if self.compression.is_some() {
            RSV1
        } else {
            0
        }
    }

    #[inline]
    fn in_large_frame(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| !s.large.is_empty())
    }

    #[inline]
    fn outbox_is_empty(&self) -> bool {
        self.spill.as_ref().is_none_or(|s| s.outbox.is_empty())
    }

    #[inline]
    fn owned_pending(&self) -> bool {
        self.spill
            .as_ref()
            .is_some_and(|s| s.outbox.owned_pending())
    }

    #[inline]
    fn copied_pending(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.outbox.copied_pending())
    }

    /// Whether this connection may be parked when quiet: a plain socket whose workload keeps
    /// no state of its own (echo and sink; broadcast and push receivers have an inbox).
    fn may_park(&self) -> bool {
        // A compressing connection's zlib state would not survive parking.
        self.compression.is_none()
            && matches!(self.stream, Stream::Plain(_))
            && matches!(
                self.workload,
                AnyWorkload::Echo(_) | AnyWorkload::JsonEcho(_) | AnyWorkload::Sink
            )
    }

    /// Nothing half-read, unwritten or unprocessed: all that is left of the connection is its
    /// socket and keep-alive.
    fn is_quiet(&self) -> bool {
        !self.buffered
            && !self.has_partial()
            && self.begun.is_none()
            && self.spill.as_ref().is_none_or(|s| s.is_unused())
    }

    /// What a parked connection keeps: its socket, taken out of tokio, and its keep-alive.
    /// `None` if the socket cannot be taken out (it is closed then).
    fn into_idle(self) -> Option<IdleConnection> {
        let Connection {
            stream,
            keep_alive,
            _open,
            ..
        } = self;
        let Stream::Plain(tcp) = stream else {
            return None;
        };
        Some(IdleConnection {
            socket: tcp.into_std().ok()?,
            keep_alive,
            open: _open.park(),
        })
    }

    /// A message is half-received: what `--read-timeout` watches.
    #[inline]
    fn has_partial(&self) -> bool {
        !self.partial.is_empty() || self.in_large_frame() || self.assembler.in_progress().is_some()
    }

    /// Bytes this connection holds for messages: cut frames, large frames, fragmented messages
    /// and in-place echoes. What it is charged against `--max-buffered`.
    #[inline]
    fn held_bytes(&self) -> usize {
        self.partial.capacity()
            + self.spill.as_ref().map_or(0, |s| {
                s.large.capacity()
                    + s.message.capacity()
                    + s.outbox.owned.capacity()
                    + s.kept.capacity()
            })
            + self.compression.as_ref().map_or(0, |c| c.held_bytes())
    }

    /// Brings the charge up (or down) to what the connection holds now.
    #[inline]
    fn settle_charge(&mut self) -> Result<(), OverBudget> {
        let held = self.held_bytes();
        if held == self.charge.held() {
            return Ok(());
        }
        self.charge.set(held)
    }

    /// Queues a ping behind the replies already waiting, unless an echo built in place is being
    /// written (nothing may go behind it); then the next input answers for the ping anyway.
    fn queue_ping(&mut self) {
        if self.owned_pending() {
            return;
        }
        if let Some(mailbox) = self.workload.mailbox() {
            // Behind the deliveries, never between them; a full inbox closes the receiver anyway.
            let mut ping = Vec::new();
            push_frame(&mut ping, Opcode::Ping, &[]);
            mailbox.push_own(&ping);
            return;
        }
        push_frame(&mut self.spill().outbox.copied, Opcode::Ping, &[]);
    }

    /// Drops the spill buffers once none is in use and none is kept, and the kept buffer if
    /// the budget has refused anyone since it was allocated.
    #[inline]
    fn trim(&mut self) {
        if let Some(s) = self.spill.as_mut() {
            if s.kept.capacity() > 0 && s.kept_refusals != self.ctx.budget.refusals() {
                s.kept = Vec::new();
            }
            if s.is_unused() && s.kept.capacity() == 0 {
                self.spill = None;
            }
        }
        if self.partial.is_empty() && self.partial.capacity() > PARTIAL_KEEP {
            self.partial = Vec::new();
        }
        // Shrinking never fails.
        let _ = self.settle_charge();
    }

    /// Keeps `buf`, a large-message buffer no longer in use, for the next large or fragmented
    /// message, so that a connection streaming large messages stops allocating after its first
    /// (and regrowing, and faulting in fresh pages, each time). Its capacity stays charged to
    /// the budget; only one buffer is kept (the larger), and only while the budget is at most
    /// half spent. Given back when the connection goes quiet ([`release_kept`]) or, by the
    /// [`trim`] that follows every keep and turn, when the budget has refused anyone since the
    /// buffer was allocated.
    ///
    /// [`release_kept`]: Self::release_kept
    /// [`trim`]: Self::trim
    fn keep(&mut self, mut buf: Vec<u8>) {
        let budget = &self.ctx.budget;
        let Some(spill) = self.spill.as_mut() else {
            return;
        };
        if buf.capacity() <= spill.kept.capacity() || !budget.may_keep() {
            return;
        }
        buf.clear();
        spill.kept = buf;
    }

    /// Whether a large-message buffer is kept.
    #[inline]
    fn keeps(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| s.kept.capacity() > 0)
    }

    /// The connection went quiet: gives its kept buffer back.
    fn release_kept(&mut self) {
        if self.keeps() {
            if let Some(s) = self.spill.as_mut() {
                s.kept = Vec::new();
            }
            self.trim();
            self.ctx.metrics.buffer_released();
        }
    }

    /// Writes the outbox (after the inbox of a broadcast or push receiver); frees what was
    /// written, but keeps an in-place echo's buffer if it may (see [`keep`](Self::keep)).
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(mailbox) = self.workload.mailbox() {
            let stream = &mut self.stream;
            match mailbox.poll_flush(cx, |cx, b| write_some(stream, cx, b)) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        let Some(spill) = self.spill.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let flushed = spill.outbox.poll_flush(&mut self.stream, cx);
        if flushed.is_ready() {
            if spill.outbox.owned.capacity() > 0 {
                let owned = std::mem::take(&mut spill.outbox.owned);
                self.keep(owned);
            }
            self.trim();
        }
        flushed
    }

    /// Waits (without a buffer) until there is input, then takes one turn with the thread's
    /// scratch buffers. Publishes the pending counts whenever it is about to wait.
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<Turn> {
        if !self.buffered {
            match self.stream.poll_read_ready(cx) {
                Poll::Pending => {
                    self.counts.publish();
                    return Poll::Pending;
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Turn::Gone),
                Poll::Ready(Ok(())) => {}
            }
        }
        let turn = SCRATCH.with(|scratch| {
            let Scratch { input, out } = &mut *scratch.borrow_mut();
            out.clear();
            let turn = if self.in_large_frame() {
                self.large_turn(cx, out)
            } else {
                self.small_turn(cx, input, out)
            };
            let Poll::Ready(turn) = turn else {
                return Poll::Pending;
            };
            let turn = match turn {
                Turn::Failed(e) => {
                    push_close(out, e.close_code(), e.close_reason());
                    turn
                }
                // Memory is checked once per turn, against everything the turn left held.
                Turn::Continue => match self.settle_charge() {
                    Ok(()) => turn,
                    Err(OverBudget) => Turn::Limit(LimitHit::OverBudget),
                },
                _ => turn,
            };
            // One write for every reply of the turn, unless earlier replies still wait: then
            // these go behind them. What the socket does not take now goes into the outbox
            // (ahead of an echo built in place this turn, which came last).
            let written = if let Some(mailbox) = self.workload.mailbox() {
                // A receiver's own frames queue behind its deliveries, never between them.
                if !mailbox.push_own(out) {
                    return Poll::Ready(Turn::Limit(LimitHit::SlowConsumer));
                }
                out.len()
            } else if self.outbox_is_empty() {
                match write_some(&mut self.stream, cx, out) {
                    Ok(n) => n,
                    Err(_) => return Poll::Ready(Turn::Gone),
                }
            } else {
                0
            };
            if written < out.len() {
                self.spill()
                    .outbox
                    .copied
                    .extend_from_slice(&out[written..]);
            } else if let Poll::Ready(Err(_)) = self.poll_flush(cx) {
                return Poll::Ready(Turn::Gone);
            }
            if out.capacity() > OUT_KEEP {
                out.clear();
                out.shrink_to(OUT_KEEP);
            }
            Poll::Ready(turn)
        });
        self.trim();
        if turn.is_pending() {
            self.counts.publish();
        }
        turn
    }

    /// A turn on the shared input buffer: carried-over bytes, then one read, then every whole
    /// frame; a frame cut at the end is begun and carried over.
    fn small_turn(
        &mut self,
        cx: &mut Context<'_>,
        input: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Poll<Turn> {
        let carried = self.partial.len();
        input[..carried].copy_from_slice(&self.partial);
        let mut end = carried;
        if self.buffered {
            self.buffered = false;
        } else {
            match read_some(&mut self.stream, cx, &mut input[carried..]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Turn::Gone),
                Poll::Ready(Some(n)) => {
                    end += n;
                    self.keep_alive.input(Instant::now());
                }
            }
        }
        self.partial.clear();
        let buf = &mut input[..end];
        let (consumed, stop) = self.process(buf, out);
        let rest = &mut buf[consumed..];
        Poll::Ready(match stop {
            Stop::NeedMore(needed) => match self.advance_cut_frame(rest) {
                Err(e) => Turn::Failed(e),
                Ok(()) => {
                    self.carry(rest, needed);
                    Turn::Continue
                }
            },
            Stop::Owned => {
                self.partial.extend_from_slice(rest);
                self.buffered = !self.partial.is_empty();
                Turn::Continue
            }
            Stop::Closed => Turn::Closed,
            Stop::Failed(e) => Turn::Failed(e),
            Stop::Limit(hit) => Turn::Limit(hit),
        })
    }

    /// Keeps the start of a frame that needs `needed` bytes in all for the next turn: in
    /// `partial` if it will fit the shared buffer, else in a buffer of its own that grows as
    /// the frame's bytes arrive (a peer's claim of 16 MB costs nothing until it sends them),
    /// the kept buffer if there is one.
    fn carry(&mut self, rest: &[u8], needed: usize) {
        if rest.is_empty() {
            return;
        }
        if needed > SCRATCH_LEN {
            let refusals = self.ctx.budget.refusals();
            let spill = self.spill();
            let mut large = spill.take_kept(refusals);
            large.extend_from_slice(rest);
            spill.large = large;
            spill.large_needed = needed;
        } else {
            self.partial.extend_from_slice(rest);
        }
    }

    /// Handles what has arrived of a data frame cut by a read, so that bad UTF-8 and broken
    /// fragmentation fail now rather than when the frame is complete: checks its header with
    /// the assembler once, then unmasks and validates the payload bytes not yet seen.
    fn advance_cut_frame(&mut self, rest: &mut [u8]) -> Result<(), ProtocolError> {
        let rsv = self.rsv_allowed();
        let f = match frame::parse_header_with(rest, Role::Server, self.ctx.max_message_size, rsv)? {
            Parsed::Frame(f) if !f.opcode.is_control() => f,
            _ => return Ok(()),
        };
        if self.begun.is_none() {
            self.begun = Some(self.assembler.begin_frame(&f)?);
            self.begun_done = 0;
        }
        let done = self.begun_done;
        let arrived = (rest.len() - f.header_len).min(f.payload_len);
        let new = &mut rest[f.header_len + done..f.header_len + arrived];
        if let Some(key) = f.mask {
            mask::apply_at(new, key, done);
        }
        self.assembler.payload(new)?;
        self.begun_done = arrived;
        Ok(())
    }

    /// A turn on a large frame: one read straight into the frame's own buffer, at most to the
    /// frame's end, until the frame is whole, then handle it and echo it in place. The buffer
    /// grows by [`grown_capacity`] only when full, charged to the budget before it grows, so
    /// it holds at most a quarter (or 64 KiB) more than has arrived.
    fn large_turn(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<Turn> {
        let Some(spill) = self.spill.as_ref() else {
            return Poll::Ready(Turn::Continue);
        };
        let (have, needed) = (spill.large.len(), spill.large_needed);
        let cap = spill.large.capacity();
        if have == cap {
            let target = grown_capacity(cap, have + 1, needed);
            let held = self.held_bytes() + (target - cap);
            if self.charge.set(held).is_err() {
                return Poll::Ready(Turn::Limit(LimitHit::OverBudget));
            }
            self.spill().large.reserve_exact(target - have);
        }
        let Connection { stream, spill, .. } = self;
        let Some(spill) = spill.as_mut() else {
            return Poll::Ready(Turn::Continue);
        };
        let want = (needed - have).min(spill.large.capacity() - have);
        match read_append(stream, cx, &mut spill.large, want) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(Turn::Gone),
            Poll::Ready(Some(_)) => {}
        }
        self.keep_alive.input(Instant::now());
        let spill = self.spill();
        let mut buf = std::mem::take(&mut spill.large);
        if buf.len() < needed {
            let advanced = self.advance_cut_frame(&mut buf);
            self.spill().large = buf;
            return Poll::Ready(match advanced {
                Ok(()) => Turn::Continue,
                Err(e) => Turn::Failed(e),
            });
        }
        self.spill().large_needed = 0;
        let f = match frame::parse_with(&buf, Role::Server, self.ctx.max_message_size, self.rsv_allowed()) {
            Ok(Parsed::Frame(f)) => f,
            Err(e) => return Poll::Ready(Turn::Failed(e)),
            Ok(Parsed::Incomplete(_)) => {
                unreachable!("the buffer was filled to the frame's length")
            }
        };
        Poll::Ready(match self.take_frame(&f, &mut buf, out) {
            Handled::EchoFrame(kind) => {
                // The reply header is shorter than the client's masked one: it fits in front
                // of the payload, and the buffer goes out as it is.
                let start = header_in_place(&mut buf, f.header_len, kind, f.payload_len);
                let outbox = &mut self.spill().outbox;
                outbox.owned = buf;
                outbox.owned_pos = start;
                Turn::Continue
            }
            Handled::Done | Handled::EchoedOwned => {
                self.keep(buf);
                Turn::Continue
            }
            Handled::Closed => Turn::Closed,
            Handled::Failed(e) => Turn::Failed(e),
            Handled::Limit(hit) => Turn::Limit(hit),
        })
    }

    /// Takes whole frames off the front of `buf`, handling each; returns how many bytes were
    /// consumed and why it stopped.
    fn process(&mut self, buf: &mut [u8], out: &mut Vec<u8>) -> (usize, Stop) {
        let mut pos = 0;
        let rsv = self.rsv_allowed();
        loop {
            let rest = &mut buf[pos..];
            let f = match frame::parse_with(rest, Role::Server, self.ctx.max_message_size, rsv) {
                Ok(Parsed::Frame(f)) => f,
                Ok(Parsed::Incomplete(needed)) => return (pos, Stop::NeedMore(needed)),
                Err(e) => return (pos, Stop::Failed(e)),
            };
            pos += f.len();
            let frame_bytes = &mut rest[..f.len()];
            match self.take_frame(&f, frame_bytes, out) {
                Handled::Done => {}
                Handled::EchoFrame(kind) => {
                    push_frame(out, kind.opcode(), &frame_bytes[f.payload_range()]);
                }
                Handled::EchoedOwned => return (pos, Stop::Owned),
                Handled::Closed => return (pos, Stop::Closed),
                Handled::Failed(e) => return (pos, Stop::Failed(e)),
                Handled::Limit(hit) => return (pos, Stop::Limit(hit)),
            }
        }
    }

    /// Unmasks a whole frame (`bytes` is the frame) and handles it, picking up where
    /// [`advance_cut_frame`](Self::advance_cut_frame) left off if it was begun.
    fn take_frame(&mut self, f: &Frame, bytes: &mut [u8], out: &mut Vec<u8>) -> Handled {
        let begun = self.begun.take();
        let done = if begun.is_some() { self.begun_done } else { 0 };
        let payload = &mut bytes[f.payload_range()];
        if let Some(key) = f.mask {
            mask::apply_at(&mut payload[done..], key, done);
        }
        let step = match begun {
            Some(step) => step,
            None => match self.assembler.begin_frame(f) {
                Ok(step) => step,
                Err(e) => return Handled::Failed(e),
            },
        };
        self.on_frame(step, payload, done, out)
    }

    /// Handles one whole, unmasked frame whose header the assembler has checked (`step`) and
    /// whose first `fed` payload bytes it has already seen.
    fn on_frame(&mut self, step: Step, payload: &[u8], fed: usize, out: &mut Vec<u8>) -> Handled {
        let (kind, first, last) = match step {
            Step::Control(Opcode::Ping) => {
                push_frame(out, Opcode::Pong, payload);
                return Handled::Done;
            }
            Step::Control(Opcode::Close) => {
                return match close::parse(payload) {
                    Err(e) => Handled::Failed(e),
                    Ok(Some(c)) => {
                        // The usual answer echoes the status code (RFC 6455 section 5.5.1).
                        push_close(out, c.code, "");
                        Handled::Closed
                    }
                    Ok(None) => {
                        push_frame(out, Opcode::Close, &[]);
                        Handled::Closed
                    }
                };
            }
            // Unsolicited pongs need no answer.
            Step::Control(_) => return Handled::Done,
            Step::Data { kind, first, last } => (kind, first, last),
        };
        if self.assembler.is_compressed() {
            return self.on_compressed(first, last, payload, out);
        }
        let completed = match self
            .assembler
            .payload(&payload[fed..])
            .and_then(|()| self.assembler.end_frame())
        {
            Ok(c) => c,
            Err(e) => return Handled::Failed(e),
        };
        if first && last {
            // The common case: a whole message in one frame, echoed from where it is.
            return self.deliver(kind, payload, out);
        }
        if first {
            let refusals = self.ctx.budget.refusals();
            let spill = self.spill();
            if spill.message.capacity() == 0 {
                spill.message = spill.take_kept(refusals);
            }
        }
        let (len, cap) = self
            .spill
            .as_ref()
            .map_or((0, 0), |s| (s.message.len(), s.message.capacity()));
        let grown = if first { REPLY_HEADROOM } else { len } + payload.len();
        if grown > cap && self.charge.set(self.held_bytes() + (grown - cap)).is_err() {
            return Handled::Limit(LimitHit::OverBudget);
        }
        let message = &mut self.spill().message;
        if first {
            message.clear();
            message.resize(REPLY_HEADROOM, 0);
        }
        message.extend_from_slice(payload);
        let Some(Completed { kind, .. }) = completed else {
            return Handled::Done;
        };
        let mut message = std::mem::take(&mut self.spill().message);
        match self.deliver(kind, &message[REPLY_HEADROOM..], out) {
            Handled::EchoFrame(kind) => {
                let len = message.len() - REPLY_HEADROOM;
                let start = header_in_place(&mut message, REPLY_HEADROOM, kind, len);
                let outbox = &mut self.spill().outbox;
                outbox.owned = message;
                outbox.owned_pos = start;
                Handled::EchoedOwned
            }
            // The workload answered with bytes of its own, or nothing.
            other => {
                self.keep(message);
                other
            }
        }
    }

    /// Handles a frame of a compressed message: inflates it (bounded by the message limit) into
    /// the connection's inflate buffer, validates the text it inflates to, and at the message's
    /// end delivers it and compresses an echo. Fragments need no buffer of their own: each is
    /// inflated as it completes.
    fn on_compressed(&mut self, first: bool, last: bool, payload: &[u8], out: &mut Vec<u8>) -> Handled {
        // Taken out for the turn so the workload can borrow the connection; put back below.
        let Some(mut z) = self.compression.take() else {
            return Handled::Failed(ProtocolError::ReservedBits(RSV1));
        };
        let t0 = now_ns();
        if first {
            z.inflater.begin();
        }
        let inflated = (|| {
            let from = z.inflater.feed(payload)?;
            self.assembler.inflated(&z.inflater.message()[from..])?;
            if last {
                let from = z.inflater.finish()?;
                self.assembler.inflated(&z.inflater.message()[from..])?;
            }
            self.assembler.end_frame()
        })();
        z.counts.wire_in += payload.len() as u64;
        let mut spent = now_ns().saturating_sub(t0);
        let handled = match inflated {
            Err(e) => Handled::Failed(e),
            Ok(None) => Handled::Done,
            Ok(Some(Completed { kind, .. })) => {
                let message = z.inflater.message();
                z.counts.messages_in += 1;
                z.counts.payload_in += message.len() as u64;
                match self.deliver(kind, message, out) {
                    Handled::EchoFrame(kind) => {
                        let t1 = now_ns();
                        let wire = z.deflater.compress(message);
                        push_compressed(out, kind.opcode(), wire);
                        z.counts.messages_out += 1;
                        z.counts.payload_out += message.len() as u64;
                        z.counts.wire_out += wire.len() as u64;
                        spent += now_ns().saturating_sub(t1);
                        Handled::Done
                    }
                    other => other,
                }
            }
        };
        z.counts.ns += spent;
        if last {
            z.inflater.trim(DEFLATE_KEEP);
            z.deflater.trim(DEFLATE_KEEP);
        }
        if z.counts.is_due() {
            self.ctx.metrics.add_deflate(&mut z.counts);
        }
        self.compression = Some(z);
        handled
    }

    /// Hands a whole message to the workload as the tungstenite engine does (pause
    /// safepoint, count, record its one-way latency), then carries out the reply.
    fn deliver(&mut self, kind: MessageKind, payload: &[u8], out: &mut Vec<u8>) -> Handled {
        self.ctx.pause.safepoint();
        self.counts.received(payload.len());
        self.ctx.recorder.observe(payload);
        let received = data_kind(kind);
        let reply = self.workload.on_message(received, payload);
        let handled = if matches!(reply, Reply::Echo) {
            self.counts.sent(payload.len());
            Handled::EchoFrame(kind)
        } else if matches!(reply, Reply::None) {
            Handled::Done
        } else {
            let body = reply.payload(payload);
            push_frame(out, opcode_of(reply.kind(received)), body);
            self.counts.sent(body.len());
            Handled::Done
        };
        if self.counts.is_due() {
            self.counts.publish();
        }
        handled
    }

    /// Writes the outbox and then `close` (if given), then says goodbye at the TCP level: FIN,
    /// then read and drop until the peer closes too, all within `wait`. A peer that takes
    /// longer is dropped and counted as a close timeout.
    async fn finish(&mut self, close: Option<(u16, &'static str)>, wait: Duration) {
        let deadline = Instant::now() + wait;
        let finished = timeout_at(deadline, async {
            poll_fn(|cx| self.poll_flush(cx)).await?;
            if let Some((code, reason)) = close {
                // Only after the queued replies, which may end in an echo built in place, and
                // behind the deliveries of a receiver (dropped with them when its inbox is full).
                if let Some(mailbox) = self.workload.mailbox() {
                    let mut frame = Vec::new();
                    push_close(&mut frame, code, reason);
                    mailbox.push_own(&frame);
                } else {
                    push_close(&mut self.spill().outbox.copied, code, reason);
                }
                poll_fn(|cx| self.poll_flush(cx)).await?;
            }
            poll_fn(|cx| Pin::new(&mut self.stream).poll_shutdown(cx)).await?;
            poll_fn(|cx| poll_drain(&mut self.stream, cx)).await
        })
        .await;
        if finished.is_err() {
            self.ctx.metrics.close_timeout();
        }
    }
}

/// Reads and drops input until end of stream, through the thread's scratch buffer.
fn poll_drain(stream: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    SCRATCH.with(|scratch| {
        let input = &mut scratch.borrow_mut().input;
        loop {
            let mut rb = ReadBuf::new(input);
            match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
            }
        }
    })
}

/// Runs one upgraded connection until it ends (`None`) or is parked (`Some`: what it keeps);
/// `open` is its place in the open-connections gauge.
///
/// Not an `async fn`: the connection's state is built here and moved into the returned future
/// once, rather than kept both as an argument and as a local of an `async fn` (which would
/// store the socket twice in every connection's task).
pub fn serve<'a>(
    upgraded: Upgraded,
    ctx: &'a ConnectionContext,
    shutdown: Shutdown,
    open: OpenConnection<'a>,
) -> impl Future<Output = Option<IdleConnection>> + Send + 'a {
    let Upgraded {
        stream,
        leftover,
        room,
        deflate,
    } = upgraded;
    let conn = Connection::new(stream, ctx, &leftover, room, deflate, open);
    // The request head's buffer is 8 KiB; an idle connection must not keep it.
    drop(leftover);
    run(conn, shutdown)
}

/// Serves a connection that was parked (see `park`) from where it left off: nothing was in
/// flight, so all it brings back is its socket and keep-alive. Ends as [`serve`] does.
pub fn resume<'a>(
    idle: IdleConnection,
    ctx: &'a ConnectionContext,
    shutdown: Shutdown,
) -> impl Future<Output = Option<IdleConnection>> + Send + 'a {
    let IdleConnection {
        socket,
        keep_alive,
        open,
    } = idle;
    let open = ctx.metrics.resume_connection(open);
    let conn = tokio::net::TcpStream::from_std(socket).ok().map(|tcp| {
        let mut conn = Connection::new(Stream::Plain(tcp), ctx, &[], None, None, open);
        conn.keep_alive = keep_alive;
        conn
    });
    async move {
        match conn {
            Some(conn) => run(conn, shutdown).await,
            None => None,
        }
    }
}

/// Runs `conn` until it ends (`None`) or is quiet long enough to be parked (its idle state).
/// Not an `async fn`, for the reason [`serve`] is not one: as one, the connection would be
/// stored twice in its future (704 bytes instead of 456).
#[allow(clippy::manual_async_fn)]
fn run<'a>(
    mut conn: Connection<'a>,
    mut shutdown: Shutdown,
) -> impl Future<Output = Option<IdleConnection>> + Send + 'a {
    async move {
        let end = message_loop(&mut conn, &mut shutdown).await;
        conn.counts.publish();
        let wait = conn.ctx.limits.close_timeout;
        let (close, wait) = match end {
            Turn::Park => return conn.into_idle(),
            Turn::Continue | Turn::Gone => return None,
            // Our close frame is queued already.
            Turn::Closed => (None, wait),
            Turn::Failed(_) => {
                conn.ctx.metrics.protocol_error();
                (None, wait)
            }
            Turn::Limit(hit) => {
                hit.count(&conn.ctx.metrics);
                (Some((hit.close_code(), hit.close_reason())), wait)
            }
            Turn::Shutdown => (
                Some((code::GOING_AWAY, "server shutting down")),
                CLOSE_WAIT.min(wait),
            ),
        };
        // Boxed: the closing timer is the largest thing this future would otherwise hold for
        // the connection's whole life; one allocation as a connection ends costs nothing.
        Box::pin(conn.finish(close, wait)).await;
        None
    }
}

/// How long a connection must be quiet to give back its kept buffer: `--park-after`, or
/// [`PARK_AFTER`] when parking is off.
#[inline]
fn quiet_after(limits: &crate::limits::Limits) -> Duration {
    if limits.park_after.is_zero() {
        PARK_AFTER
    } else {
        limits.park_after
    }
}

/// Takes turns until the connection ends one way or another: writes the outbox, reads and
/// handles input, and keeps the connection's timer (keep-alive, read timeout).
///
/// Output: replies the socket does not take wait in the outbox while reading goes on, up to
/// `--max-write-buffer` of them; a peer that leaves more unread is a slow consumer and is
/// closed. An echo built in place (a large or fragmented message) is written before anything
/// else is read: it is a whole message already, charged to the budget.
async fn message_loop(conn: &mut Connection<'_>, shutdown: &mut Shutdown) -> Turn {
    // Shutdown is noticed by one atomic load per turn (`is_requested`); an idle connection is
    // woken for it by `go_away`, which is polled once only, to put this task's waker on it.
    // (Polling it per message would take its lock each time.) The trigger fires before
    // `go_away` is notified, so a connection registered too late still sees the request.
    let go_away = conn.ctx.go_away.notified();
    tokio::pin!(go_away);
    if poll_fn(|cx| Poll::Ready(go_away.as_mut().poll(cx).is_ready())).await {
        return Turn::Shutdown;
    }
    let limits = &conn.ctx.limits;
    // A connection quiet for `quiet_after` gives back its kept buffer and, if it may, is
    // parked. Recomputed rather than kept: every byte of this future is a byte per connection.
    let parks = |conn: &Connection<'_>| conn.may_park() && !limits.park_after.is_zero();
    // When to look whether the connection has been quiet long enough: always if it may be
    // parked, otherwise only while it keeps a buffer.
    let mut quiet_at = parks(conn).then(|| Instant::now() + quiet_after(limits));
    let deadline = |conn: &Connection<'_>, quiet_at: Option<Instant>| {
        let keep_alive = conn.keep_alive.deadline(limits, Instant::now());
        quiet_at.map_or(keep_alive, |at| keep_alive.min(at))
    };
    // One timer per connection, boxed so the idle task stays small; it is re-armed only when
    // it fires (or a connection that is never parked begins to keep a buffer), never per
    // message.
    let mut timer = Box::pin(sleep_until(deadline(conn, quiet_at)));
    poll_fn(|cx| loop {
        if shutdown.is_requested() {
            return Poll::Ready(Turn::Shutdown);
        }
        if timer.as_mut().poll(cx).is_ready() {
            let partial = conn.has_partial();
            let now = Instant::now();
            match conn.keep_alive.on_timer(limits, partial, now) {
                Due::Close(hit) => return Poll::Ready(Turn::Limit(hit)),
                Due::Ping => conn.queue_ping(),
                Due::Wait => {}
            }
            if quiet_at.is_some_and(|at| now >= at) {
                let quiet_until = conn.keep_alive.last_input() + quiet_after(limits);
                quiet_at = if quiet_until > now {
                    Some(quiet_until)
                } else {
                    conn.release_kept();
                    let parks = parks(conn);
                    let idle = conn.is_quiet() && conn.outbox_is_empty();
                    if parks && idle && conn.ctx.lot.is_open() {
                        return Poll::Ready(Turn::Park);
                    }
                    // Something is in flight (a ping just queued, say): look again later.
                    parks.then(|| now + quiet_after(limits))
                };
            }
            timer.as_mut().reset(deadline(conn, quiet_at));
            continue;
        }
        if let Some(mailbox) = conn.workload.mailbox() {
            if mailbox.is_slow() {
                return Poll::Ready(Turn::Limit(LimitHit::SlowConsumer));
            }
        }
        if !conn.outbox_is_empty() || conn.workload.mailbox().is_some() {
            match conn.poll_flush(cx) {
                Poll::Ready(Err(_)) => return Poll::Ready(Turn::Gone),
                Poll::Ready(Ok(())) => {}
                Poll::Pending if conn.owned_pending() => return Poll::Pending,
                Poll::Pending => {}
            }
        }
        if quiet_at.is_none() && conn.keeps() {
            // Rare: a connection that is never parked has just begun to keep a buffer.
            quiet_at = Some(conn.keep_alive.last_input() + quiet_after(limits));
            timer.as_mut().reset(deadline(conn, quiet_at));
        }
        let turn = match conn.poll_turn(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(turn) => turn,
        };
        if turn != Turn::Continue {
            return Poll::Ready(turn);
        }
        if conn.copied_pending() > limits.max_write_buffer {
            return Poll::Ready(Turn::Limit(LimitHit::SlowConsumer));
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::pause::PauseGate;
    use crate::recorder::Recorder;
    use crate::shutdown::ShutdownTrigger;
    use wsbench_core::plan::{Engine, Handler, Workload};

    fn context() -> ConnectionContext {
        ConnectionContext {
            engine: Engine::ZeroAlloc,
            workload: Workload::Echo,
            handler: Handler::ZeroAlloc,
            max_message_size: 1 << 20,
            limits: crate::limits::Limits::default(),
            tls: None,
            subprotocols: Vec::new(),
            require_subprotocol: false,
            gate: crate::gate::Gate::default(),
            deflate: None,
            budget: crate::limits::Budget::new(1 << 30),
            metrics: Arc::new(Metrics::default()),
            pause: Arc::new(PauseGate::new()),
            recorder: Arc::new(Recorder::new()),
            hub: Arc::new(crate::workload::Hub::new(
                Workload::Echo,
                Engine::ZeroAlloc,
                Default::default(),
            )),
            go_away: tokio::sync::Notify::new(),
            lot: crate::park::Lot::new().unwrap(),
        }
    }

    /// A connection costs its task until it is quiet long enough to be parked, and the task is
    /// mostly this future. Grows past the limit when a field or a long-lived local is added to
    /// the connection; measured 480 bytes (rustc 1.95; 488 before the kept large-message
    /// buffer's quiet check replaced the park deadline's locals, 456 before the permessage-deflate state,
    /// 416 before the park deadline, 320 before the keep-alive state, budget charge and timer),
    /// the limit leaves room for compiler differences and stays under the 544 at which a
    /// connection's task (see server.rs) grows by 128 bytes. A parked connection keeps none of
    /// it (see `park`).
    #[tokio::test]
    async fn an_idle_connection_future_stays_small() {
        let ctx = context();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let trigger = ShutdownTrigger::new();
        let upgraded = Upgraded {
            stream: Stream::Plain(stream),
            leftover: Vec::new(),
            room: None,
            deflate: None,
        };
        let engine = crate::engine::serve(upgraded, &ctx, trigger.subscribe());
        let size = std::mem::size_of_val(&engine);
        assert!(
            size <= 512,
            "the zero-alloc connection future is {size} bytes"
        );
        drop((engine, client));
        let conn = std::mem::size_of::<Connection<'_>>();
        // 232 since the permessage-deflate pointer (the future, 424 bytes, stayed in its bound).
        assert!(conn <= 232, "a connection is {conn} bytes");
    }

    #[test]
    fn in_place_reply_headers_fit_in_front_of_the_payload() {
        // A client's masked header is at least 4 bytes longer than our unmasked one for the
        // same payload (or longer still, with a non-minimal length): the large-frame echo
        // relies on it, and so does the headroom of fragmented messages.
        for len in [0, 1, 125, 126, 65_535, 65_536, 16 << 20] {
            let client = write::header_len(len, true);
            assert!(write::header_len(len, false) + 4 <= client, "{len}");
            assert!(write::header_len(len, false) <= REPLY_HEADROOM, "{len}");
            let mut buf = vec![0u8; client + 3];
            let start = header_in_place(&mut buf, client, MessageKind::Binary, len);
            let parsed = frame::parse_header(&buf[start..], Role::Client, usize::MAX >> 1);
            match parsed {
                Ok(Parsed::Frame(f)) => {
                    assert_eq!(
                        (f.header_len, f.payload_len, f.fin),
                        (client - start, len, true)
                    );
                }
                other => panic!("{len}: {other:?}"),
            }
        }
    }
}
