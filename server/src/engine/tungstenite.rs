//! The tokio-tungstenite engine: the reference implementation every other engine is compared to.
//!
//! Tuned as measured on a 2-core VM: an 8 KiB read buffer instead of the zero-filled 128 KiB
//! default, and replies are `feed`-ed and flushed only when no further frame is ready, so
//! pipelined echoes leave in one write instead of one write each. Its steady-state echo path
//! allocates nothing per message (tungstenite hands us the payload as `Bytes`, and we send that
//! very message back). Pings are answered and close frames acknowledged inside tungstenite.
//!
//! Limits (see `limits`): the socket is wrapped in [`Metered`], which sees every byte before
//! tungstenite does. Bytes received since the last complete message stand for the partial
//! message tungstenite holds: beyond the read buffer's 8 KiB they are charged to the server's
//! budget (a read that would go past it fails, and the connection is closed with 1008), and
//! any say that a message is half-received, for the read timeout. Reads also feed the
//! keep-alive. tungstenite reserves a frame's declared length up front (`BytesMut::reserve`);
//! that is address space, not resident memory, until bytes arrive, so the budget counts what
//! arrived. Output: replies are queued without waiting for the socket and reading goes on, as
//! in the zero-alloc engine; [`Metered`] counts the bytes the socket took, and a connection
//! whose queued replies (fed less written) pass `--max-write-buffer` is closed with 1008.
//! Invalid UTF-8 is found per frame, not as a frame's bytes arrive: tungstenite hands over
//! whole frames only, so Autobahn 6.4.3 and 6.4.4 stay NON-STRICT here.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use crate::transport::Stream;
use tokio::time::{sleep_until, timeout_at, Duration, Instant};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use wsbench_core::codec::write;

use super::{ConnectionContext, Upgraded, CLOSE_WAIT};
use crate::limits::{Charge, Due, KeepAlive, LimitHit};
use crate::metrics::ConnectionCounts;
use crate::shutdown::Shutdown;
use crate::workload::{AnyWorkload, DataKind, Inbox, Reply, Workload};
use std::sync::Arc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::Notify;

/// tungstenite's read size per connection. It zero-fills this much ahead of what has arrived
/// before every read (the 128 KiB default costs a quarter of small-message throughput and 128 KiB
/// per connection), so a claimed frame keeps about this much resident beyond its bytes: 8 KiB
/// made a 2,000-connection claim flood hold 29 MiB, 2 KiB about half of that.
const READ_BUFFER: usize = 2 * 1024;

/// Reads of a busy connection go through a buffer of this size instead (see [`ReadAhead`]), so
/// that a small tungstenite read size costs no extra system calls.
const READ_AHEAD: usize = 8 * 1024;

/// Bytes read from the socket that tungstenite has not asked for yet: a connection whose read
/// once filled tungstenite's [`READ_BUFFER`] (pipelined or large messages) reads
/// [`READ_AHEAD`] at a time into this and hands them on as asked. Allocated on that first full
/// read (a claimed frame's few bytes never fill one), freed after a quiet ping interval.
struct ReadAhead {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ReadAhead {
    fn new() -> Box<Self> {
        Box::new(Self {
            buf: vec![0u8; READ_AHEAD].into_boxed_slice(),
            start: 0,
            end: 0,
        })
    }

    /// Moves what it holds (as much as fits) into `buf`; false when it held nothing.
    fn hand_on(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.start == self.end {
            return false;
        }
        let n = buf.remaining().min(self.end - self.start);
        buf.put_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        true
    }
}

/// tungstenite's own write batching target, unless `--max-write-buffer` is smaller.
const WRITE_BUFFER: usize = 128 * 1024;

/// The configuration every connection gets.
pub fn websocket_config(max_message_size: usize, max_write_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER.min(max_write_buffer))
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// The socket as tungstenite sees it: every read is charged to the budget and noted by the
/// keep-alive before tungstenite gets the bytes.
struct Metered<'a> {
    inner: Stream,
    /// Bytes received since the last complete message.
    since_message: usize,
    /// What of them is charged to the budget: all but the first [`READ_AHEAD`], which a busy
    /// connection's buffers hold anyway. So a stream of small messages never touches the
    /// budget's shared counter.
    charge: Charge<'a>,
    keep_alive: KeepAlive,
    /// A read was refused because the budget is spent.
    over_budget: bool,
    ahead: Option<Box<ReadAhead>>,
    /// Bytes of data frames handed to tungstenite, and bytes the socket took (control frames
    /// too, so what is still queued may be underestimated by a few of those).
    fed: u64,
    written: u64,
}

impl Metered<'_> {
    /// A message (data or control) came out whole: what preceded it is no longer partial.
    fn message_done(&mut self) {
        self.since_message = 0;
        if self.charge.held() > 0 {
            // Shrinking never fails.
            let _ = self.charge.set(0);
        }
    }

    fn has_partial(&self) -> bool {
        self.since_message > 0
    }

    /// Frees the read-ahead buffer if it holds nothing (the connection has been quiet).
    fn release_ahead(&mut self) {
        if self.ahead.as_ref().is_some_and(|a| a.start == a.end) {
            self.ahead = None;
        }
    }

    /// One read for tungstenite: from the read-ahead buffer while it holds bytes, else from the
    /// socket (into the read-ahead buffer once a read has filled tungstenite's).
    fn poll_read_through(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(ahead) = self.ahead.as_mut() else {
            let room = buf.remaining();
            let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
            if matches!(polled, Poll::Ready(Ok(()))) && room > 0 && buf.remaining() == 0 {
                self.ahead = Some(ReadAhead::new());
            }
            return polled;
        };
        if ahead.hand_on(buf) {
            return Poll::Ready(Ok(()));
        }
        let mut into = ReadBuf::new(&mut ahead.buf);
        match Pin::new(&mut self.inner).poll_read(cx, &mut into) {
            Poll::Ready(Ok(())) => {
                (ahead.start, ahead.end) = (0, into.filled().len());
                ahead.hand_on(buf);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    /// Replies tungstenite holds that the socket has not taken: what `--max-write-buffer` bounds.
    fn unwritten(&self) -> usize {
        usize::try_from(self.fed.saturating_sub(self.written)).unwrap_or(usize::MAX)
    }

    /// `n` more bytes arrived; false when the budget cannot take them.
    fn received(&mut self, n: usize) -> bool {
        self.since_message += n;
        let charged = self.since_message.saturating_sub(READ_AHEAD);
        charged <= self.charge.held() || self.charge.set(charged).is_ok()
    }
}

impl AsyncRead for Metered<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = this.poll_read_through(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.keep_alive.input(Instant::now());
            if !this.received(n) {
                this.over_budget = true;
                return Poll::Ready(Err(io::Error::other("partial-message budget spent")));
            }
        }
        polled
    }
}

impl AsyncWrite for Metered<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.written += n as u64;
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.written += n as u64;
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

type Ws<'a> = WebSocketStream<Metered<'a>>;

/// How a connection's message loop ended.
enum End {
    /// Closing handshake done, or the peer went away; nothing left to do.
    Closed,
    /// The server is shutting down.
    Shutdown,
    /// Reading or writing failed.
    Failed(WsError),
    /// A limit ends the connection.
    Limit(LimitHit),
}

/// What the loop takes next: a message read from the peer, or a delivery to send it.
enum Incoming {
    Read(Option<Result<Message, WsError>>),
    Delivery(Message),
}

/// The next delivery from a channel inbox; never ready for a workload without one.
async fn next_delivery(workload: &mut AnyWorkload) -> Option<Message> {
    match workload.inbox() {
        Some(Inbox::Channel(rx, _)) => rx.recv().await,
        _ => std::future::pending().await,
    }
}

/// Resolves when a sender found this connection's inbox full; never without an inbox.
async fn found_slow(slow: Option<Arc<Notify>>) {
    match slow {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

/// Sends a delivery as a reply is sent: waits while the socket takes nothing, with the
/// keep-alive running.
async fn send_reply(
    ws: &mut Ws<'_>,
    reply: Message,
    timer: &mut Pin<&mut tokio::time::Sleep>,
    shutdown: &mut Shutdown,
    limits: &crate::limits::Limits,
    slow: Option<Arc<Notify>>,
) -> Result<(), End> {
    let slow = found_slow(slow);
    tokio::pin!(slow);
    loop {
        tokio::select! {
            () = &mut slow => return Err(End::Limit(LimitHit::SlowConsumer)),
            ready = poll_fn(|cx| ws.poll_ready_unpin(cx)) => match ready {
                Ok(()) => break,
                Err(e) => return Err(End::Failed(e)),
            },
            () = &mut *timer => {
                let partial = ws.get_ref().has_partial();
                match ws.get_mut().keep_alive.on_timer(limits, partial, Instant::now()) {
                    Due::Close(hit) => return Err(End::Limit(hit)),
                    Due::Ping | Due::Wait => {}
                }
                let due = ws.get_ref().keep_alive.deadline(limits, Instant::now());
                timer.as_mut().reset(due);
            }
            () = shutdown.wait() => return Err(End::Shutdown),
        }
    }
    ws.start_send_unpin(reply).map_err(End::Failed)
}

/// What woke a waiting connection.
enum Woke {
    Next(Option<Result<Message, WsError>>),
    /// A broadcast or push delivery from the inbox; `None`: the inbox was closed because the
    /// connection fell too far behind.
    Delivery(Option<Message>),
    /// A sender found the inbox full.
    Slow,
    Flushed(Result<(), WsError>),
    Timer,
    Shutdown,
}

pub async fn serve(upgraded: Upgraded, ctx: &ConnectionContext, mut shutdown: Shutdown) {
    // `deflate` is never negotiated for this engine (`--deflate` requires zero-alloc).
    let Upgraded {
        stream,
        leftover,
        room,
        deflate: _,
    } = upgraded;
    let limits = &ctx.limits;
    let config = websocket_config(ctx.max_message_size, limits.max_write_buffer);
    let mut metered = Metered {
        inner: stream,
        since_message: 0,
        charge: Charge::new(&ctx.budget),
        keep_alive: KeepAlive::new(Instant::now()),
        over_budget: false,
        ahead: None,
        fed: 0,
        written: 0,
    };
    // Bytes that came with the request head (at most 8 KiB) are a message begun, too.
    metered.over_budget = !metered.received(leftover.len());
    let mut ws = if leftover.is_empty() {
        WebSocketStream::from_raw_socket(metered, Role::Server, Some(config)).await
    } else {
        WebSocketStream::from_partially_read(metered, leftover, Role::Server, Some(config)).await
    };
    let mut workload = ctx.open_workload(room);
    let slow = match workload.inbox() {
        Some(Inbox::Channel(_, slow)) => Some(Arc::clone(slow)),
        _ => None,
    };
    let mut counts = ConnectionCounts::new(&ctx.metrics);
    let mut unflushed = false;
    // A reply larger than `--max-write-buffer` is queued: read nothing more until it is written.
    let mut large_pending = false;
    let timer = sleep_until(ws.get_ref().keep_alive.deadline(limits, Instant::now()));
    tokio::pin!(timer);

    let end = loop {
        // One atomic load: a connection kept busy by its client still notices shutdown.
        if shutdown.is_requested() {
            break End::Shutdown;
        }
        if ws.get_ref().over_budget {
            break End::Limit(LimitHit::OverBudget);
        }
        // Deliveries (broadcast, push) already waiting go out before more is read.
        let waiting = match workload.inbox() {
            Some(Inbox::Channel(rx, _)) => match rx.try_recv() {
                Ok(m) => Some(m),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => break End::Limit(LimitHit::SlowConsumer),
            },
            _ => None,
        };
        // Take the next message if it is already buffered or readable. Only when none is do we
        // flush the echoes fed so far, so pipelined messages share one write.
        // A reply larger than the write mark is written before anything more is read.
        let next = match waiting.map(Ok).or_else(|| if large_pending { None } else { ws.next().now_or_never().map(Err) }) {
            Some(Ok(delivery)) => Incoming::Delivery(delivery),
            Some(Err(next)) => Incoming::Read(next),
            None => {
                counts.publish();
                // While echoes wait for the socket, reading goes on (up to the write
                // high-water mark, checked as each reply is queued), as in the zero-alloc
                // engine: a client that does not read is closed for it, not left to stall.
                // Deliveries wait until what was queued before them is written.
                let woke = tokio::select! {
                    woke = poll_fn(|cx| {
                        if unflushed {
                            if let Poll::Ready(r) = ws.poll_flush_unpin(cx) {
                                return Poll::Ready(Woke::Flushed(r));
                            }
                        }
                        if large_pending {
                            return Poll::Pending;
                        }
                        ws.poll_next_unpin(cx).map(Woke::Next)
                    }) => woke,
                    delivery = next_delivery(&mut workload), if !unflushed && !large_pending => Woke::Delivery(delivery),
                    () = found_slow(slow.clone()) => Woke::Slow,
                    () = &mut timer => Woke::Timer,
                    () = shutdown.wait() => Woke::Shutdown,
                };
                match woke {
                    Woke::Next(next) => Incoming::Read(next),
                    Woke::Delivery(Some(m)) => Incoming::Delivery(m),
                    Woke::Delivery(None) | Woke::Slow => break End::Limit(LimitHit::SlowConsumer),
                    Woke::Flushed(Ok(())) => {
                        unflushed = false;
                        large_pending = false;
                        continue;
                    }
                    Woke::Flushed(Err(e)) => break End::Failed(e),
                    Woke::Shutdown => break End::Shutdown,
                    Woke::Timer => {
                        let partial = ws.get_ref().has_partial();
                        let now = Instant::now();
                        match ws.get_mut().keep_alive.on_timer(limits, partial, now) {
                            Due::Close(hit) => break End::Limit(hit),
                            Due::Ping => {
                                // Quiet for a ping interval: its read-ahead buffer can go.
                                ws.get_mut().release_ahead();
                                // Queued like a reply; a socket too full to take it leaves
                                // the pong timeout to decide.
                                if ws
                                    .feed(Message::Ping(Bytes::new()))
                                    .now_or_never()
                                    .is_some()
                                {
                                    unflushed = true;
                                }
                            }
                            Due::Wait => {}
                        }
                        let due = ws.get_ref().keep_alive.deadline(limits, Instant::now());
                        timer.as_mut().reset(due);
                        continue;
                    }
                }
            }
        };
        let next = match next {
            Incoming::Read(next) => next,
            Incoming::Delivery(m) => {
                // Counted by the hub (server.json `fanout`), as the zero-alloc engine does.
                if let Err(end) = send_reply(&mut ws, m, &mut timer, &mut shutdown, limits, slow.clone()).await {
                    break end;
                }
                unflushed = true;
                continue;
            }
        };
        let msg = match next {
            None => break End::Closed,
            Some(Err(_)) if ws.get_ref().over_budget => break End::Limit(LimitHit::OverBudget),
            Some(Err(e)) => break End::Failed(e),
            Some(Ok(msg)) => msg,
        };
        ws.get_mut().message_done();
        ctx.pause.safepoint();
        let (kind, payload): (DataKind, &[u8]) = match &msg {
            Message::Text(t) => (DataKind::Text, t.as_bytes()),
            Message::Binary(b) => (DataKind::Binary, b),
            // Ping, pong, close: tungstenite queued any answer; the next read sends it.
            _ => continue,
        };
        let len = payload.len();
        counts.received(len);
        ctx.recorder.observe(payload);
        // Echo sends back the very message (its `Bytes` are shared, nothing is copied); a
        // workload's own reply is wrapped without copying either.
        let reply = match workload.on_message(kind, payload) {
            Reply::Echo => msg,
            Reply::Text(t) => Message::Text(t.into()),
            Reply::Binary(b) => Message::Binary(b.into()),
            Reply::None => {
                if counts.is_due() {
                    counts.publish();
                }
                continue;
            }
        };
        let reply_len = reply.len();
        // Queued without waiting for the socket: tungstenite writes what the socket takes and
        // keeps the rest, and what it keeps is bounded here, by the bytes fed less the bytes
        // written.
        if let Err(e) = ws.start_send_unpin(reply) {
            break End::Failed(e);
        }
        let frame_len = write::header_len(reply_len, false) + reply_len;
        let metered = ws.get_mut();
        metered.fed += frame_len as u64;
        // The mark bounds what is queued beyond the one message being written.
        if frame_len > limits.max_write_buffer {
            large_pending = true;
        } else if metered.unwritten() > limits.max_write_buffer {
            break End::Limit(LimitHit::SlowConsumer);
        }
        counts.sent(reply_len);
        unflushed = true;
        if counts.is_due() {
            counts.publish();
        }
    };
    counts.publish();

    let wait = limits.close_timeout;
    // The closing futures are boxed: `fail`'s drain buffer alone is 4 KiB, and unboxed every
    // connection would carry it for its whole life. One allocation as a connection ends.
    let finished = match end {
        End::Closed => true,
        End::Shutdown => Box::pin(go_away(&mut ws, CLOSE_WAIT.min(wait))).await,
        End::Failed(e) => match close_for(&e) {
            Some((code, reason)) => {
                ctx.metrics.protocol_error();
                Box::pin(fail(&mut ws, code, reason, wait)).await
            }
            None => true,
        },
        End::Limit(hit) => {
            hit.count(&ctx.metrics);
            let code = CloseCode::from(hit.close_code());
            Box::pin(fail(&mut ws, code, hit.close_reason(), wait)).await
        }
    };
    if !finished {
        ctx.metrics.close_timeout();
    }
}

/// The close frame a failed connection gets, or `None` when the peer is gone already (I/O error,
/// reset) and there is no one to tell; only `Some` counts as a protocol error.
fn close_for(e: &WsError) -> Option<(CloseCode, &'static str)> {
    match e {
        // RFC 6455 section 5.2: the most significant bit of a 64-bit length must be 0. Such a
        // length is malformed, not merely large; tungstenite reports it as too large.
        WsError::Capacity(CapacityError::MessageTooLong { size, .. })
            if (*size as u64) >> 63 == 1 =>
        {
            Some((CloseCode::Protocol, "protocol error"))
        }
        WsError::Capacity(_) => Some((CloseCode::Size, "message too big")),
        WsError::Utf8(_) => Some((CloseCode::Invalid, "text message is not UTF-8")),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Io(_) | WsError::ConnectionClosed | WsError::AlreadyClosed => None,
        _ => Some((CloseCode::Protocol, "protocol error")),
    }
}

/// Shutdown: close with 1001 (going away), then wait for the peer's close frame, within
/// `wait`. Messages that still arrive are not answered. False when the peer took too long.
async fn go_away(ws: &mut Ws<'_>, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: Utf8Bytes::from_static("server shutting down"),
    };
    match timeout_at(deadline, ws.close(Some(frame))).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return true,
        Err(_) => return false,
    }
    // The stream ends when the peer's close frame arrives (or the peer vanishes).
    timeout_at(deadline, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await
    .is_ok()
}

/// A failed connection: send `code`, stop writing, and drain what the peer still sends until it
/// closes too, within `wait`. The frame reader may be mid-frame after an error, so the rest is
/// read as raw bytes and dropped; closing with unread input would make the kernel reset the
/// connection, and the peer could lose our close frame. False when the peer took too long.
async fn fail(ws: &mut Ws<'_>, code: CloseCode, reason: &'static str, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    match timeout_at(deadline, ws.send(Message::Close(Some(frame)))).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return true,
        Err(_) => return false,
    }
    timeout_at(deadline, async {
        // Raw bytes from here: past the meter, so a spent budget does not stop the drain.
        let tcp = &mut ws.get_mut().inner;
        tcp.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tcp.read(&mut sink).await? != 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_close_codes() {
        let too_big = WsError::Capacity(CapacityError::MessageTooLong {
            size: 2048,
            max_size: 1024,
        });
        assert_eq!(close_for(&too_big).map(|c| c.0), Some(CloseCode::Size));
        let masked = WsError::Protocol(ProtocolError::UnmaskedFrameFromClient);
        assert_eq!(close_for(&masked).map(|c| c.0), Some(CloseCode::Protocol));
        assert_eq!(
            close_for(&WsError::Utf8("x".into())).map(|c| c.0),
            Some(CloseCode::Invalid)
        );
        let top_bit = WsError::Capacity(CapacityError::MessageTooLong {
            size: 1 << 63,
            max_size: 1024,
        });
        assert_eq!(close_for(&top_bit).map(|c| c.0), Some(CloseCode::Protocol));
        let reset = WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(close_for(&reset), None);
        assert_eq!(
            close_for(&WsError::Io(std::io::ErrorKind::BrokenPipe.into())),
            None
        );
    }

    /// An idle connection of this engine carries this future (boxed) for its whole life.
    /// Measured 1,472 bytes (rustc 1.95); 5,248 while `fail`'s 4 KiB drain buffer was inline.
    #[tokio::test]
    async fn a_connection_future_stays_small() {
        let ctx = ConnectionContext::for_test();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let trigger = crate::shutdown::ShutdownTrigger::new();
        let upgraded = Upgraded {
            stream: crate::transport::Stream::Plain(stream),
            leftover: Vec::new(),
            room: None,
            deflate: None,
        };
        let future = serve(upgraded, &ctx, trigger.subscribe());
        let size = std::mem::size_of_val(&future);
        assert!(size <= 2048, "the tungstenite connection future is {size} bytes");
        drop((future, client));
    }

    #[test]
    fn config_follows_the_plan() {
        let c = websocket_config(1024, 1 << 20);
        assert_eq!(c.read_buffer_size, READ_BUFFER);
        assert_eq!(c.write_buffer_size, WRITE_BUFFER);
        assert_eq!(websocket_config(1024, 4096).write_buffer_size, 4096);
        assert_eq!(c.max_message_size, Some(1024));
        assert_eq!(c.max_frame_size, Some(1024));
    }
}
