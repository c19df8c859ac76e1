//! The zero-alloc client engine: wsbench-core's RFC 6455 codec over a raw tokio `TcpStream`.
//!
//! The handshake is done here (a GET with a random `Sec-WebSocket-Key`, the `101` response
//! parsed with httparse and its `Sec-WebSocket-Accept` checked); after it, a connection touches
//! only buffers it allocated when it opened:
//!
//! - **Sending.** The send buffer is a row of frame slots whose headers are written once, when
//!   the connection starts. Sending a message fills the next free slot in place: a fresh mask
//!   key from a per-connection xorshift generator, the wsbench header, the filler (copied from
//!   the connection's [`Filler`](crate::connection::Filler) pattern), then the mask over the
//!   payload. Every message that is due goes into the row before one `write`, so a closed-loop
//!   batch of echoes releases a batch of messages in one syscall. When the row is full, sending
//!   waits for the write to drain it instead of growing it.
//! - **Receiving.** Reads go into a reused buffer that holds at least two echoes; frames are
//!   parsed where they lie ([`frame::parse`] says when a frame is not yet complete), and a
//!   single-frame echo is checked in place. Fragmented echoes are gathered into a buffer of
//!   one message, allocated up front.
//! - **Checking and recording** are the [`Session`]'s, shared with the tungstenite engine.
//!
//! Pings are answered with a pong, a server's close frame is answered with a close and ends the
//! connection like tungstenite's does (the fleet hears "close 1001 going away" and the like), and
//! a protocol violation by the server is answered with the close code the codec assigns.

use std::future::{poll_fn, Future};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use wsbench_core::clock::now_ns;
use wsbench_core::codec::close::{self, code};
use wsbench_core::codec::deflate::{self, Agreement, DeflateConfig, Deflater, Inflater, RSV1};
use wsbench_core::codec::{frame, mask, write, MessageAssembler, MessageKind, Opcode, Parsed, ProtocolError, Role, Step, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use wsbench_core::header::HEADER_LEN;
use wsbench_core::plan::Mode;

use crate::client::{ConnectError, ConnectTimes};
use crate::transport::{Target, Transport};
use crate::churn::CloseOutcome;
use crate::connection::{describe_close_code, describe_io_error, ConnEnd, ConnShared, Step as LoopStep, CLOSE_TIMEOUT};
use crate::session::{Session, Turn, Turns};
use crate::setup::CompressionCounts;

/// The server's handshake response is read into a buffer this long, dropped once it is parsed.
const HANDSHAKE_BUFFER: usize = 8 << 10;
/// Smallest read buffer of a connection: one control frame of the largest size (a ping or close
/// with 125 bytes of payload), which every connection must be able to take whole.
const MIN_READ_BUFFER: usize = CONTROL_FRAME;
/// The read buffer holds a batch of echoes up to about this many bytes (at least two frames).
const READ_BUFFER_BYTES: usize = 1 << 20;
/// The send row holds at most about this many bytes of frames (at least two frames).
const SEND_ROW_BYTES: usize = 64 << 10;
const MAX_BATCH: usize = 256;
/// Open loop: a connection's buffers hold what its share of the rate sends in this long.
const BATCH_COVER_S: f64 = 0.01;

/// Messages one connection sends or receives in one batch, which sizes its buffers: closed loop
/// the messages allowed in flight, open loop what its share of `rate` sends in [`BATCH_COVER_S`]
/// (at least 2; at most [`MAX_BATCH`]). Memory per connection follows what is in flight, so
/// 10,000 connections at a low rate cost little; a backlog larger than a batch is sent and read
/// in several system calls, never by growing a buffer.
pub fn expected_batch(rate: Option<f64>, connections: u32, in_flight: u32) -> usize {
    let n = match rate {
        Some(rate) => (rate / f64::from(connections.max(1)) * BATCH_COVER_S).ceil() as usize,
        None => in_flight as usize,
    };
    n.clamp(2, MAX_BATCH)
}
/// A control frame: the longest header and the longest payload.
const CONTROL_FRAME: usize = MAX_HEADER_LEN + MAX_CONTROL_PAYLOAD;
/// A control frame we send: its payload is at most 125 bytes, so the header is two bytes and
/// the mask key.
const SENT_CONTROL_FRAME: usize = 2 + 4 + MAX_CONTROL_PAYLOAD;
// Its lengths are kept in bytes (see `Wire`).
const _: () = assert!(SENT_CONTROL_FRAME <= u8::MAX as usize);

/// An open connection, handshake done, ready for [`run`].
pub struct ZeroStream {
    tcp: Transport,
    /// The read buffer; it may already hold bytes the server sent right after its response.
    rbuf: Box<[u8]>,
    rstart: usize,
    rend: usize,
    /// permessage-deflate, if the server agreed to our offer.
    deflate: Option<Agreement>,
}

/// Room over the message size a compressed frame may need: deflate's stored blocks and the
/// flush add a few bytes when a message does not compress.
fn deflate_slack(size: usize) -> usize {
    size / 256 + 64
}

impl ZeroStream {
    /// Sends a close frame without a code and drops the connection (see
    /// [`crate::client::Client::close_unused`]).
    pub async fn close_unused(mut self) {
        let mut frame = [0u8; MAX_HEADER_LEN];
        let n = write::header(&mut frame, true, Opcode::Close, 0, Some(XorShift::seeded(0).mask_key()));
        if self.tcp.write_all(&frame[..n]).await.is_ok() {
            // TLS may hold the frame until flushed.
            let _ = self.tcp.flush().await;
        }
    }
}

/// Opens one connection: the transport ([`Target::open`]), then the WebSocket handshake, done by
/// hand. `batch` is the connection's [`expected_batch`].
pub async fn connect(target: &Target, size: u64, batch: usize) -> Result<(ZeroStream, ConnectTimes), ConnectError> {
    connect_reusing(target, size, batch, None).await
}

/// [`connect`], reading the handshake response into `reuse` (a closed connection's read buffer)
/// and keeping it as the new read buffer when it is large enough, so a replacement under churn
/// allocates no buffer of its own.
async fn connect_reusing(target: &Target, size: u64, batch: usize, reuse: Option<Box<[u8]>>) -> Result<(ZeroStream, ConnectTimes), ConnectError> {
    let (url, addr) = (target.url.as_str(), target.addr.as_str());
    let asked = target.connection_url();
    let req = asked.as_ref().into_client_request().map_err(|e| ConnectError::new("bad URL", format!("`{url}` is not a WebSocket URL: {e}")))?;
    let uri = req.uri();
    let host = uri.authority().map_or(addr, |a| a.as_str());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());

    let (mut tcp, open) = target.open().await?;
    let failed = |what: String| format!("WebSocket handshake with {url} failed: {what}");

    let mut rng = XorShift::seeded(addr.len() as u64 ^ now_ns());
    let offer = target.offered_subprotocols();
    let extensions = target.deflate.as_ref().map(deflate::offer);
    let (request, key) = handshake_request(host, path, &target.headers, offer.as_deref(), extensions.as_deref(), &mut rng);
    tcp.write_all(request.as_bytes()).await.map_err(|e| ConnectError::io(&e, failed(e.to_string())))?;
    tcp.flush().await.map_err(|e| ConnectError::io(&e, failed(e.to_string())))?;
    let t0 = now_ns();

    let size = usize::try_from(size).unwrap_or(usize::MAX);
    // A reused buffer too small for the response head is swapped for a larger one when it fills.
    // Only a reused buffer becomes the read buffer: a fresh head buffer is larger than most
    // connections need, and memory per connection follows what it has in flight.
    let mut reused = reuse.as_ref().is_some_and(|b| !b.is_empty());
    let mut head = reuse.filter(|b| !b.is_empty()).unwrap_or_else(|| vec![0u8; HANDSHAKE_BUFFER].into_boxed_slice());
    // The reused buffer, once the head outgrew it: still the read buffer afterwards.
    let mut spare: Option<Box<[u8]>> = None;
    let mut rend = 0;
    let (head_len, subprotocol, agreed) = loop {
        if rend == head.len() {
            if rend >= HANDSHAKE_BUFFER {
                return Err(ConnectError::new("handshake error: response head too long", failed(format!("response head longer than {rend} bytes"))));
            }
            let mut larger = vec![0u8; HANDSHAKE_BUFFER].into_boxed_slice();
            larger[..rend].copy_from_slice(&head[..rend]);
            let old = std::mem::replace(&mut head, larger);
            if std::mem::take(&mut reused) {
                spare = Some(old);
            }
        }
        let n = tokio::io::AsyncReadExt::read(&mut tcp, &mut head[rend..]).await.map_err(|e| ConnectError::io(&e, failed(e.to_string())))?;
        if n == 0 {
            return Err(ConnectError::new("closed", failed("the server closed the connection".into())));
        }
        rend += n;
        if let Some(done) = check_response_with(&head[..rend], &key, &target.subprotocols, target.deflate.as_ref()).map_err(|e| ConnectError::new(e.cause(), failed(e.to_string())))? {
            break done;
        }
    };
    let handshake_ns = now_ns() - t0;
    // What the server sent right behind its response is kept; the rest of the head is not.
    let early = head_len..rend;
    let frame_size = if agreed.is_some() { size.saturating_add(deflate_slack(size)) } else { size };
    let want = read_buffer_len(frame_size, batch).max(early.len());
    let rbuf = if reused && head.len() >= want {
        head.copy_within(early.clone(), 0);
        head
    } else {
        let mut rbuf = spare.filter(|b| b.len() >= want).unwrap_or_else(|| vec![0u8; want].into_boxed_slice());
        rbuf[..early.len()].copy_from_slice(&head[early.clone()]);
        rbuf
    };
    let times = ConnectTimes { connect_ns: open.connect_ns, tls_ns: open.tls_ns, handshake_ns, subprotocol, deflate: agreed };
    Ok((ZeroStream { tcp, rbuf, rstart: 0, rend: early.len(), deflate: agreed }, times))
}

/// The read buffer for echoes of `size` bytes, `batch` at a time: at least two whole frames, so
/// a read rarely has to wait for a frame split at the end of the buffer to be moved to its start
/// (echoes of one length never need it: a frame that ends at the buffer's end empties it), and a
/// batch of them up to [`READ_BUFFER_BYTES`]. Large echoes gain nothing from more: a read takes
/// what has arrived, and a buffer several times the cache would only be refilled from memory.
fn read_buffer_len(size: usize, batch: usize) -> usize {
    let frame = size.saturating_add(MAX_HEADER_LEN);
    let frames = batch.max(2).min((READ_BUFFER_BYTES / frame).max(2));
    frame.saturating_mul(frames).max(MIN_READ_BUFFER)
}

/// The handshake request for `path` on `host`, with a random `Sec-WebSocket-Key`, `headers`, the
/// `offer` of subprotocols and the `extensions` offered (a header value); returns the request and
/// the key, which [`check_response`] needs.
pub(crate) fn handshake_request(host: &str, path: &str, headers: &[(String, String)], offer: Option<&str>, extensions: Option<&str>, rng: &mut XorShift) -> (String, String) {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&rng.next().to_ne_bytes());
    nonce[8..].copy_from_slice(&rng.next().to_ne_bytes());
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(offer) = offer {
        request.push_str(&format!("Sec-WebSocket-Protocol: {offer}\r\n"));
    }
    if let Some(extensions) = extensions {
        request.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
    }
    request.push_str("\r\n");
    (request, key)
}

/// Why a handshake response was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadResponse {
    /// The server answered with another status than 101.
    Status(u16, String),
    /// Anything else wrong with it, in words.
    Other(String),
}

impl BadResponse {
    /// The countable cause (see [`ConnectError::cause`]).
    pub fn cause(&self) -> String {
        match self {
            Self::Status(code, _) => format!("HTTP status {code}"),
            Self::Other(text) => format!("handshake error: {text}"),
        }
    }
}

impl std::fmt::Display for BadResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(code, reason) => write!(f, "the server answered {code} {reason} instead of 101 Switching Protocols"),
            Self::Other(text) => f.write_str(text),
        }
    }
}

/// Checks the server's response head: `Ok(None)` while it is incomplete, its length and the
/// subprotocol the server chose once it is a valid `101 Switching Protocols` for our key and
/// `offered` subprotocols.
pub fn check_response(buf: &[u8], key: &str, offered: &[String]) -> Result<Option<(usize, Option<String>)>, BadResponse> {
    Ok(check_response_with(buf, key, offered, None)?.map(|(len, chosen, _)| (len, chosen)))
}

/// A complete `101` response: its length, the chosen subprotocol and the deflate agreement.
pub type Accepted = (usize, Option<String>, Option<Agreement>);

/// [`check_response`] for a client that offered permessage-deflate with `deflate`: also returns
/// what the server agreed to (`None`: it declined), and refuses an answer the offer did not allow.
pub fn check_response_with(buf: &[u8], key: &str, offered: &[String], deflate: Option<&DeflateConfig>) -> Result<Option<Accepted>, BadResponse> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(BadResponse::Other(format!("malformed HTTP response: {e}"))),
    };
    if resp.code != Some(101) {
        return Err(BadResponse::Status(resp.code.unwrap_or(0), resp.reason.unwrap_or("").to_owned()));
    }
    let header = |name: &str| resp.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
    let has_token = |name: &str, token: &str| {
        header(name).and_then(|v| std::str::from_utf8(v).ok()).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err(BadResponse::Other("the 101 response lacks `Upgrade: websocket` or `Connection: Upgrade`".into()));
    }
    if header("sec-websocket-accept") != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
        return Err(BadResponse::Other("wrong or missing Sec-WebSocket-Accept".into()));
    }
    // An extension we did not offer must not be chosen (RFC 6455 section 4.1); permessage-deflate
    // only as our offer allows (RFC 7692 section 7.1).
    let extensions: Vec<&str> = resp.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions")).map(|h| std::str::from_utf8(h.value).unwrap_or("?")).collect();
    let agreed = match deflate {
        None if extensions.is_empty() => None,
        None => return Err(BadResponse::Other("the server chose an extension we did not offer".into())),
        Some(config) => {
            let other = extensions.iter().flat_map(|v| v.split(',')).any(|e| !e.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(deflate::NAME));
            if other {
                return Err(BadResponse::Other(format!("the server chose an extension we did not offer: {}", extensions.join(", "))));
            }
            deflate::accept_response(config, &extensions).map_err(|e| BadResponse::Other(format!("bad permessage-deflate answer `{}`: {}", extensions.join(", "), e.0)))?
        }
    };
    // Nor a subprotocol we did not offer (section 4.1 again).
    let chosen = match header("sec-websocket-protocol") {
        None => None,
        Some(v) => match std::str::from_utf8(v).ok().map(str::trim).filter(|p| offered.iter().any(|o| o == p)) {
            Some(p) => Some(p.to_owned()),
            None => return Err(BadResponse::Other(format!("the server chose subprotocol `{}`, which we did not offer", String::from_utf8_lossy(v)))),
        },
    };
    Ok(Some((len, chosen, agreed)))
}

/// xorshift64*: mask keys need to be unpredictable to intermediaries, not cryptographic, and
/// must cost nothing per frame.
pub(crate) struct XorShift(u64);

impl XorShift {
    /// Seeded from std's per-process random keys, so connections and runs differ.
    pub(crate) fn seeded(salt: u64) -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u64(now_ns());
        Self(h.finish() | 1)
    }

    #[inline]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[inline]
    pub(crate) fn mask_key(&mut self) -> [u8; 4] {
        ((self.next() >> 32) as u32).to_ne_bytes()
    }
}

/// What the socket had to say.
enum Io {
    /// New bytes are in the read buffer, with the kernel's receive stamp of the last segment
    /// (`CLOCK_REALTIME` ns; 0 without kernel stamps).
    Read(u64),
    /// The send row was full and has drained: sending may resume.
    Writable,
    Failed(String),
}

/// The transport half of a connection: socket and buffers. Kept apart from the [`Session`] so
/// the socket can be polled while a stop request updates the session.
struct Wire {
    tcp: Transport,
    rbuf: Box<[u8]>,
    /// Unparsed bytes are `rbuf[rstart..rend]`.
    rstart: usize,
    rend: usize,
    /// Frame slots, `frame_len` bytes each; their headers are written once.
    row: Box<[u8]>,
    frame_len: usize,
    /// Header length of a data frame; its last four bytes are the mask key. This and the
    /// control frame's lengths are bytes: every connection's task carries them.
    header_len: u8,
    /// Bytes of `row` filled (whole frames) and written so far.
    filled: usize,
    written: usize,
    /// A control frame to send (pong or close), written between data frames.
    ctrl: [u8; SENT_CONTROL_FRAME],
    ctrl_len: u8,
    ctrl_written: u8,
    /// The row was full: nothing is sent until it drains.
    blocked: bool,
    /// Kernel receive timestamps ([`crate::rxstamp`]): [`RX_KERNEL`], reads go through
    /// `recvmsg` and take the kernel's stamp; [`RX_QUIET`], the low-water mark is raised, so an
    /// echo does not wake the worker and the connection reads at its wake-ups instead. One
    /// byte: it fits the padding every connection's task has anyway.
    rx: u8,
    rng: XorShift,
}

impl Wire {
    /// True when a data frame may be added to the row.
    #[inline]
    fn has_room(&self) -> bool {
        self.filled + self.frame_len <= self.row.len()
    }

    /// Queues a control frame, replacing one not yet started (answering only the latest ping is
    /// allowed, and a close supersedes a pong). Returns false when one is half written.
    fn queue_control(&mut self, opcode: Opcode, payload: &[u8]) -> bool {
        if self.ctrl_written > 0 && self.ctrl_written < self.ctrl_len {
            return false;
        }
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        let key = self.rng.mask_key();
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = write::header(&mut header, true, opcode, payload.len(), Some(key));
        self.ctrl[..n].copy_from_slice(&header[..n]);
        self.ctrl[n..n + payload.len()].copy_from_slice(payload);
        mask::apply(&mut self.ctrl[n..n + payload.len()], key);
        self.ctrl_len = (n + payload.len()) as u8;
        self.ctrl_written = 0;
        true
    }

    /// Queues a close frame with `code` and no reason.
    fn queue_close(&mut self, code: u16) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let n = close::payload(&mut payload, code, "");
        self.queue_control(Opcode::Close, &payload[..n]);
    }

    /// Writes what is pending; `Some` when there is something to report. A control frame goes
    /// out only between data frames: once it has started, or when the row is fully written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Option<Io> {
        loop {
            let ctrl_pending = self.ctrl_written < self.ctrl_len;
            let ctrl = ctrl_pending && (self.ctrl_written > 0 || self.written == self.filled);
            let buf = if ctrl {
                &self.ctrl[usize::from(self.ctrl_written)..usize::from(self.ctrl_len)]
            } else if self.written < self.filled {
                &self.row[self.written..self.filled]
            } else {
                return None;
            };
            match Pin::new(&mut self.tcp).poll_write(cx, buf) {
                Poll::Ready(Ok(0)) => return Some(Io::Failed("connection closed".into())),
                // At most the control frame's length, which fits a byte.
                Poll::Ready(Ok(n)) if ctrl => self.ctrl_written += n as u8,
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Some(Io::Failed(describe_io_error(&e))),
                Poll::Pending => return None,
            }
            if self.ctrl_written == self.ctrl_len {
                self.ctrl_written = 0;
                self.ctrl_len = 0;
            }
            if self.written == self.filled {
                self.written = 0;
                self.filled = 0;
                if std::mem::take(&mut self.blocked) {
                    return Some(Io::Writable);
                }
            }
        }
    }

    /// Writes first (what was just queued goes out at once), then reads.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Io> {
        if let Some(io) = self.poll_write(cx) {
            return Poll::Ready(io);
        }
        if self.rend == self.rbuf.len() {
            // Only reachable with a partial frame at the end: parsing consumes whole frames and
            // the buffer holds at least one of the largest frame accepted.
            self.compact();
        }
        if self.rx & RX_KERNEL != 0 {
            return self.poll_read_stamped(cx);
        }
        let mut rb = ReadBuf::new(&mut self.rbuf[self.rend..]);
        match Pin::new(&mut self.tcp).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Io::Failed("connection closed without a close frame".into()));
                }
                self.rend += n;
                Poll::Ready(Io::Read(0))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Io::Failed(describe_io_error(&e))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Kernel stamps: reads once the socket reports readable (a read buffer's worth arrived,
    /// the peer closed, or after the low-water mark went back to 1) through `recvmsg`, so the
    /// stamp comes along; tokio's readiness is cleared when there was nothing after all.
    fn poll_read_stamped(&mut self, cx: &mut Context<'_>) -> Poll<Io> {
        let Transport::Plain(tcp) = &self.tcp else { return Poll::Ready(Io::Failed("kernel receive timestamps need a plain socket".into())) };
        let fd = tcp.as_raw_fd();
        loop {
            match tcp.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Io::Failed(describe_io_error(&e))),
                Poll::Ready(Ok(())) => {}
            }
            let buf = &mut self.rbuf[self.rend..];
            match tcp.try_io(tokio::io::Interest::READABLE, || crate::rxstamp::recv(fd, buf)) {
                Ok((0, _)) => return Poll::Ready(Io::Failed("connection closed without a close frame".into())),
                Ok((n, stamp)) => {
                    self.rend += n;
                    // A missing stamp reads as 0, which the conversion refuses (and counts).
                    return Poll::Ready(Io::Read(stamp.max(1)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Io::Failed(describe_io_error(&e))),
            }
        }
    }

    /// Kernel stamps: reads what has arrived without waiting: `Ok(None)` when nothing had,
    /// `Ok(Some((n, stamp)))` otherwise (`n` 0: the peer closed).
    fn read_now(&mut self) -> Result<Option<(usize, u64)>, String> {
        let Transport::Plain(tcp) = &self.tcp else { return Ok(None) };
        let fd = tcp.as_raw_fd();
        if self.rend == self.rbuf.len() {
            self.compact();
        }
        match crate::rxstamp::recv(fd, &mut self.rbuf[self.rend..]) {
            Ok((n, stamp)) => {
                self.rend += n;
                Ok(Some((n, stamp.max(1))))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(describe_io_error(&e)),
        }
    }

    /// Kernel stamps: lets every segment wake the worker again (the drain, closing): a close
    /// frame or the last echoes are then read as they come. Stamps are still taken.
    fn wake_on_every_echo(&mut self) {
        if self.rx & RX_QUIET != 0 {
            self.rx &= !RX_QUIET;
            if let Transport::Plain(tcp) = &self.tcp {
                // Failing, the socket keeps its mark: a read buffer's worth or a close still wakes it.
                let _ = crate::rxstamp::set_lowat(tcp.as_raw_fd(), 1);
            }
        }
    }

    /// Moves the unparsed bytes to the start of the read buffer.
    fn compact(&mut self) {
        self.rbuf.copy_within(self.rstart..self.rend, 0);
        self.rend -= self.rstart;
        self.rstart = 0;
    }

    /// Writes everything pending, and flushes what TLS holds, bounded by the caller's timeout.
    async fn drain_writes(&mut self) -> io::Result<()> {
        poll_fn(|cx| match self.poll_write(cx) {
            Some(Io::Failed(e)) => Poll::Ready(Err(io::Error::other(e))),
            _ if self.written == self.filled && self.ctrl_written == self.ctrl_len => Pin::new(&mut self.tcp).poll_flush(cx),
            _ => Poll::Pending,
        })
        .await
    }
}

/// permessage-deflate state of a connection that negotiated it, allocated when it opens: zlib
/// state each way, the message being built before it is compressed, and byte counts.
struct ClientDeflate {
    inflater: Inflater,
    deflater: Deflater,
    plain: Box<[u8]>,
    opcode: Opcode,
    counts: CompressionCounts,
}

/// One zero-alloc connection.
struct ZeroConn<'a> {
    session: Session<'a>,
    wire: Wire,
    assembler: MessageAssembler,
    /// A fragmented echo, gathered; single-frame echoes are checked where they lie.
    fragments: Vec<u8>,
    /// The fragmented echo outgrew what we sent: it is recorded as corrupted when it ends.
    oversized: bool,
    /// permessage-deflate, when negotiated: messages are built in its `plain` buffer and
    /// compressed into the row, frame by frame, instead of in place.
    z: Option<Box<ClientDeflate>>,
}

/// Runs connection number `index` (of the whole process) until it has sent its share, drained
/// and closed, or until the peer drops it; the zero-alloc counterpart of
/// [`crate::connection::run`].
///
/// Not an `async fn`: its arguments would keep their room (the stream alone is 72 bytes) in
/// every connection's task for the whole run, next to the connection built from them.
pub fn run(stream: ZeroStream, index: u32, slot: usize, shared: &ConnShared) -> impl Future<Output = ConnEnd> + '_ {
    let mut conn = ZeroConn::new(stream, index, slot, shared);
    async move {
        // Nothing of an ending is held across an await: it would take room in every task.
        let end = 'run: {
            // Bytes the server sent right behind its handshake response.
            if let Some(end) = conn.on_read() {
                break 'run end;
            }
            loop {
                match conn.run_loop().await {
                    LoopStep::End(end) => break 'run end,
                    // Churn: a new connection in this place, and what its server sent right away.
                    LoopStep::Churn => match conn.replace().await {
                        Ok(true) => {
                            if let Some(end) = conn.on_read() {
                                break 'run end;
                            }
                        }
                        Ok(false) => break 'run ConnEnd::Retired,
                        Err(cause) => break 'run ConnEnd::Dropped(cause),
                    },
                }
            }
        };
        conn.add_compression_counts();
        conn.session.give_up_outstanding();
        // Taken by value: a finished connection keeps nothing of `end` across its close.
        match end {
            ConnEnd::Finished => {
                conn.session.note_finish();
                conn.close().await;
                ConnEnd::Finished
            }
            ConnEnd::Dropped(cause) => {
                // Send the close reply or error close that ending queued; a reset fails at once.
                let _ = tokio::time::timeout(std::time::Duration::from_millis(100), conn.wire.drain_writes()).await;
                conn.session.report_drop(&cause);
                ConnEnd::Dropped(cause)
            }
            ConnEnd::Retired => {
                // Closing a retired place is the ramp's, counted with it.
                crate::churn::counted_drop(&shared.churn_allocations, conn);
                ConnEnd::Retired
            }
        }
    }
}

impl<'a> ZeroConn<'a> {
    /// Sets connection number `index` up over `stream`. Not part of the async [`run`], so its
    /// locals do not take room in every connection's task for the whole run.
    fn new(stream: ZeroStream, index: u32, slot: usize, shared: &'a ConnShared) -> Self {
        let session = Session::new(shared, index, slot);
        let size = shared.size;
        let opcode = match shared.mode {
            Mode::Binary => Opcode::Binary,
            Mode::Text => Opcode::Text,
        };
        let mut rng = XorShift::seeded(u64::from(index));
        // The data frame header, written into every slot now; only its mask key changes later.
        let mut header = [0u8; MAX_HEADER_LEN];
        let header_len = write::header(&mut header, true, opcode, size, Some(rng.mask_key()));
        debug_assert!(header_len <= MAX_HEADER_LEN);
        // A compressed frame's length varies: slots are sized for the longest one, and each
        // frame is written where the last one ended.
        let frame_len = match stream.deflate {
            Some(_) => MAX_HEADER_LEN + size + deflate_slack(size),
            None => header_len + size,
        };
        let z = stream.deflate.map(|a| {
            Box::new(ClientDeflate {
                inflater: Inflater::new(a.server_max_window_bits, a.server_no_context_takeover, size),
                deflater: Deflater::new(a.client_max_window_bits, a.client_no_context_takeover, 6),
                plain: vec![0u8; size].into_boxed_slice(),
                opcode,
                counts: CompressionCounts::default(),
            })
        });
        let batch = match shared.send_mode {
            crate::connection::SendMode::Closed { in_flight } => expected_batch(None, 1, in_flight),
            crate::connection::SendMode::Open { rate, connections, .. } => expected_batch(Some(rate), connections, 0),
        };
        // The batch, within the row's byte budget (but never below two frames, nor below the
        // closed-loop batch: those messages are released together).
        let mut slots = batch.min((SEND_ROW_BYTES / frame_len).max(2));
        if let crate::connection::SendMode::Closed { in_flight } = shared.send_mode {
            slots = slots.max((in_flight as usize).min(MAX_BATCH));
        }
        let mut row = vec![0u8; slots * frame_len].into_boxed_slice();
        for slot in row.chunks_exact_mut(frame_len) {
            slot[..header_len].copy_from_slice(&header[..header_len]);
        }
        let max_payload = stream.rbuf.len() - MAX_HEADER_LEN;
        ZeroConn {
            session,
            wire: Wire {
                tcp: stream.tcp,
                rbuf: stream.rbuf,
                rstart: stream.rstart,
                rend: stream.rend,
                row,
                frame_len,
                header_len: header_len as u8,
                filled: 0,
                written: 0,
                ctrl: [0; SENT_CONTROL_FRAME],
                ctrl_len: 0,
                ctrl_written: 0,
                blocked: false,
                rx: 0,
                rng,
            },
            assembler: MessageAssembler::new(max_payload),
            fragments: Vec::with_capacity(size),
            oversized: false,
            z,
        }
        .with_kernel_stamps()
    }

    /// Kernel receive timestamps, when asked for and this connection can use them (see
    /// [`crate::rxstamp`]); otherwise the fallback is counted with its reason.
    fn with_kernel_stamps(mut self) -> Self {
        let shared = self.session.shared;
        if !shared.rx_kernel {
            return self;
        }
        let why = match shared.send_mode {
            _ if !matches!(self.wire.tcp, Transport::Plain(_)) => Some("wss:// (TLS decrypts in user space: its records carry no stamps)"),
            crate::connection::SendMode::Closed { .. } => Some("closed loop (an echo releases the next send, so the worker wakes for it anyway)"),
            // A connection sending more rarely would wake just to read (pings, close frames).
            crate::connection::SendMode::Open { rate, connections, .. } if rate / f64::from(connections.max(1)) < MIN_KERNEL_STAMP_RATE => {
                Some("a connection sends fewer than 100 msgs/s (it would wake to read anyway)")
            }
            _ => None,
        };
        if let Some(why) = why {
            shared.rx.fell_back(why);
            return self;
        }
        if self.enable_kernel_stamps() {
            shared.rx.update(|c| c.kernel_connections += 1);
        } else {
            shared.rx.fell_back("setsockopt SO_TIMESTAMPNS or SO_RCVLOWAT failed");
        }
        self
    }

    /// Turns stamps on for the current socket; false when the kernel refused.
    fn enable_kernel_stamps(&mut self) -> bool {
        let w = &mut self.wire;
        let Transport::Plain(tcp) = &w.tcp else { return false };
        // A read buffer's worth (at least two echoes) still wakes the worker, so the buffer
        // never holds back the socket.
        let ok = crate::rxstamp::enable(tcp.as_raw_fd(), w.rbuf.len()).is_ok();
        w.rx = if ok { RX_KERNEL | RX_QUIET } else { 0 };
        self.session.shared.rx.set_last_read(self.session.slot(), now_ns());
        ok
    }
}

/// [`Wire::rx`]: kernel receive timestamps on; the low-water mark raised.
const RX_KERNEL: u8 = 1;
const RX_QUIET: u8 = 2;
/// Kernel stamps: a connection sending fewer messages per second than this times its echoes
/// in user space (see [`ZeroConn::with_kernel_stamps`]).
const MIN_KERNEL_STAMP_RATE: f64 = 100.0;
/// Kernel stamps: with nothing outstanding, a connection reads at least this often (pings).
const READ_IDLE_NS: u64 = 10_000_000;

impl ZeroConn<'_> {
    async fn run_loop(&mut self) -> LoopStep {
        let mut turns = Turns::new(&mut self.session);
        loop {
            if self.wire.rx & RX_QUIET != 0 {
                if !self.session.sending {
                    self.wire.wake_on_every_echo();
                }
                // Echoes that arrived since the last wake-up, timed by the kernel.
                if self.session.oldest_sent().is_some() || now_ns() >= self.session.shared.rx.last_read(self.session.slot()) + READ_IDLE_NS {
                    if let Some(end) = self.read_arrived() {
                        return end.into();
                    }
                }
            }
            self.send_due();
            if self.session.is_done() {
                return ConnEnd::Finished.into();
            }
            if self.session.wants_reconnect() {
                return LoopStep::Churn;
            }
            turns.arm(&self.session);
            // While the row is full, a past send deadline would fire on every turn: wait for
            // the write instead.
            let timer_on = !(self.session.sending && self.wire.blocked);
            if self.wire.rx & RX_QUIET != 0 {
                let shared = self.session.shared;
                if let Err(e) = shared.clock.read_from(self.session.slot(), self.read_from()) {
                    return ConnEnd::Dropped(format!("cannot arm the timerfd: {e}")).into();
                }
            }
            let wire = &mut self.wire;
            let io = match turns.wait(&mut self.session, timer_on, poll_fn(|cx| wire.poll_io(cx))).await {
                Turn::Io(io) => io,
                Turn::Again => continue,
                Turn::End(end) => return end.into(),
            };
            match io {
                Io::Read(0) => {
                    if let Some(end) = self.on_read() {
                        return end.into();
                    }
                }
                Io::Read(stamp) => {
                    if let Some(end) = self.on_read_stamped(stamp) {
                        return end.into();
                    }
                }
                Io::Writable => {}
                Io::Failed(cause) => return ConnEnd::Dropped(cause).into(),
            }
        }
    }

    /// Fills a slot of the row for every message due now (one batch); the write follows in `poll_io`.
    fn send_due(&mut self) {
        self.session.start_batch();
        let w = &mut self.wire;
        let mut now = now_ns();
        // Closed loop: the batch goes out in one write, so one clock reading stamps all of it.
        let per_message = self.session.is_open_loop();
        while w.has_room() {
            let Some(intended) = self.session.next_due_at(now) else {
                return;
            };
            if let Some(z) = &mut self.z {
                // The message is built whole, compressed, then framed and masked in the row.
                z.plain[HEADER_LEN..].copy_from_slice(self.session.filler.tail(self.session.next_seq()));
                now = now_ns();
                let header = self.session.header(intended, now);
                header.encode(&mut z.plain[..HEADER_LEN]);
                let wire = z.deflater.compress(&z.plain);
                let key = w.rng.mask_key();
                let mut head = [0u8; MAX_HEADER_LEN];
                let n = write::header(&mut head, true, z.opcode, wire.len(), Some(key));
                head[0] |= RSV1 << 4;
                let frame = &mut w.row[w.filled..w.filled + n + wire.len()];
                frame[..n].copy_from_slice(&head[..n]);
                frame[n..].copy_from_slice(wire);
                mask::apply(&mut frame[n..], key);
                w.filled += n + wire.len();
                z.counts.messages_out += 1;
                z.counts.payload_out += z.plain.len() as u64;
                z.counts.wire_out += wire.len() as u64;
                self.session.sent(header);
                continue;
            }
            let slot = &mut w.row[w.filled..w.filled + w.frame_len];
            let key = w.rng.mask_key();
            let header_len = usize::from(w.header_len);
            slot[header_len - 4..header_len].copy_from_slice(&key);
            let payload = &mut slot[header_len..];
            payload[HEADER_LEN..].copy_from_slice(self.session.filler.tail(self.session.next_seq()));
            // Open loop: the actual send time is read as late as possible, right before masking
            // and the write; it is the next message's `now` as well.
            if per_message {
                now = now_ns();
            }
            let header = self.session.header(intended, now);
            header.encode(&mut payload[..HEADER_LEN]);
            mask::apply(payload, key);
            w.filled += w.frame_len;
            self.session.sent(header);
        }
        // Full with more to send: wait for the write to make room.
        w.blocked = self.session.sending;
    }

    /// Kernel stamps, quiet socket: from when any firing of the worker's clock should read:
    /// [`crate::rxstamp::RxClock::wait_for_echo`] after the oldest message outstanding was
    /// sent, or [`READ_IDLE_NS`] after the last read when none is. The clock bounds the wait
    /// (see [`crate::pacer::SendClock::read_from`]), so a read adds no firing between sends.
    fn read_from(&self) -> u64 {
        let rx = &self.session.shared.rx;
        let last_read = rx.last_read(self.session.slot());
        match self.session.oldest_sent() {
            Some(sent) => {
                // Each read that found nothing doubles the wait since sending: a stalled
                // server costs a few reads per message, not one per wake-up of the worker.
                sent + rx.wait_for_echo().max(2 * last_read.saturating_sub(sent))
            }
            None => last_read + READ_IDLE_NS,
        }
    }

    /// Kernel stamps: reads and handles everything that has arrived; `Some` ends the connection.
    fn read_arrived(&mut self) -> Option<ConnEnd> {
        let mut empty = true;
        self.session.shared.rx.set_last_read(self.session.slot(), now_ns());
        loop {
            let room = self.wire.rbuf.len() - self.wire.rend;
            match self.wire.read_now() {
                Ok(None) => {
                    if empty {
                        self.session.shared.rx.update(|c| c.empty_reads += 1);
                    }
                    return None;
                }
                Ok(Some((0, _))) => return Some(ConnEnd::Dropped("connection closed without a close frame".into())),
                Ok(Some((n, stamp))) => {
                    empty = false;
                    if let Some(end) = self.on_read_stamped(stamp) {
                        return Some(end);
                    }
                    if n < room {
                        return None;
                    }
                }
                Err(cause) => return Some(ConnEnd::Dropped(cause)),
            }
        }
    }

    /// [`Self::on_read`] for bytes read with the kernel's receive stamp `stamp` (of the last
    /// segment read): every echo completed by them arrived then. When more than one is, or bytes
    /// of a later frame came along, the earlier ones arrived sooner: counted as shared stamps.
    fn on_read_stamped(&mut self, stamp: u64) -> Option<ConnEnd> {
        let rx = &self.session.shared.rx;
        let at = rx.arrival(stamp, now_ns());
        if let Some(sent) = self.session.oldest_sent() {
            rx.observe_echo(at.saturating_sub(sent));
        }
        let before = self.session.outstanding_len();
        let end = self.on_read_at(at);
        let echoes = before.saturating_sub(self.session.outstanding_len());
        let w = &self.wire;
        let shared = if w.rstart < w.rend { echoes } else { echoes.saturating_sub(1) };
        rx.update(|c| {
            c.kernel_echoes += echoes;
            c.shared_stamps += shared;
        });
        end
    }

    /// Handles every whole frame in the read buffer; `Some` ends the connection.
    fn on_read(&mut self) -> Option<ConnEnd> {
        self.on_read_at(now_ns())
    }

    /// [`Self::on_read`], the frames having arrived at `now`.
    fn on_read_at(&mut self, now: u64) -> Option<ConnEnd> {
        loop {
            let w = &mut self.wire;
            let rsv = if self.z.is_some() { RSV1 } else { 0 };
            // Largest frame payload accepted: what fits in the read buffer.
            let max_payload = w.rbuf.len() - MAX_HEADER_LEN;
            let parsed = match frame::parse_with(&w.rbuf[w.rstart..w.rend], Role::Client, max_payload, rsv) {
                Ok(p) => p,
                Err(e) => return Some(self.protocol_error(e)),
            };
            let f = match parsed {
                Parsed::Frame(f) => f,
                Parsed::Incomplete(need) => {
                    if w.rstart == w.rend {
                        w.rstart = 0;
                        w.rend = 0;
                    } else if w.rstart + need > w.rbuf.len() {
                        w.compact();
                    }
                    return None;
                }
            };
            let range = w.rstart + f.header_len..w.rstart + f.len();
            w.rstart += f.len();
            let step = match self.assembler.begin_frame(&f) {
                Ok(s) => s,
                Err(e) => return Some(self.protocol_error(e)),
            };
            let w = &mut self.wire;
            let payload = &w.rbuf[range];
            match step {
                Step::Control(Opcode::Ping) => {
                    // A pong that cannot be queued behind a half-written one is skipped: only
                    // the latest ping needs an answer.
                    let mut copy = [0u8; MAX_CONTROL_PAYLOAD];
                    copy[..payload.len()].copy_from_slice(payload);
                    w.queue_control(Opcode::Pong, &copy[..payload.len()]);
                }
                Step::Control(Opcode::Close) => {
                    let code = match close::parse(payload) {
                        Ok(c) => c.map(|c| c.code),
                        Err(e) => return Some(self.protocol_error(e)),
                    };
                    // Echo the code, as RFC 6455 section 5.5.1 suggests.
                    w.queue_close(code.unwrap_or(code::NORMAL));
                    return Some(ConnEnd::Dropped(describe_close_code(code)));
                }
                Step::Control(_) => {}
                Step::Data { kind, first, last } if self.assembler.is_compressed() => {
                    let Some(z) = self.z.as_mut() else {
                        return Some(self.protocol_error(ProtocolError::ReservedBits(RSV1)));
                    };
                    if first {
                        z.inflater.begin();
                    }
                    z.counts.wire_in += payload.len() as u64;
                    let assembler = &mut self.assembler;
                    let inflated = (|| {
                        let from = z.inflater.feed(payload)?;
                        assembler.inflated(&z.inflater.message()[from..])?;
                        if last {
                            let from = z.inflater.finish()?;
                            assembler.inflated(&z.inflater.message()[from..])?;
                        }
                        assembler.end_frame()
                    })();
                    match inflated {
                        Ok(Some(_)) => {
                            z.counts.messages_in += 1;
                            z.counts.payload_in += z.inflater.message().len() as u64;
                            self.session.on_echo(z.inflater.message(), kind == MessageKind::Text, now);
                        }
                        Ok(None) => {}
                        Err(e) => return Some(self.protocol_error(e)),
                    }
                }
                Step::Data { kind, first, last } => {
                    if let Err(e) = self.assembler.payload(payload) {
                        return Some(self.protocol_error(e));
                    }
                    let is_text = kind == MessageKind::Text;
                    if first && last {
                        if let Err(e) = self.assembler.end_frame() {
                            return Some(self.protocol_error(e));
                        }
                        self.session.on_echo(payload, is_text, now);
                        continue;
                    }
                    if first {
                        self.fragments.clear();
                        self.oversized = false;
                    }
                    // Never grown: an echo longer than what we sent is corrupt anyway.
                    if self.fragments.len() + payload.len() <= self.fragments.capacity() {
                        self.fragments.extend_from_slice(payload);
                    } else {
                        self.oversized = true;
                    }
                    match self.assembler.end_frame() {
                        Ok(Some(_)) => {
                            // An empty slice fails the header check: recorded as corrupted.
                            let data: &[u8] = if self.oversized { &[] } else { &self.fragments };
                            self.session.on_echo(data, is_text, now);
                        }
                        Ok(None) => {}
                        Err(e) => return Some(self.protocol_error(e)),
                    }
                }
            }
        }
    }

    /// The server broke the protocol: close with the code the codec assigns, and end.
    fn protocol_error(&mut self, e: ProtocolError) -> ConnEnd {
        self.wire.queue_close(e.close_code());
        ConnEnd::Dropped(format!("protocol error from the server: {e}"))
    }

    /// Adds this connection's permessage-deflate byte counts to the worker's.
    fn add_compression_counts(&mut self) {
        if let Some(z) = &mut self.z {
            let shared = self.session.shared;
            let mut all = shared.compression.get();
            all.add(&std::mem::take(&mut z.counts));
            shared.compression.set(all);
        }
    }

    /// Churn: closes the connection (1000, the reply awaited for [`CLOSE_TIMEOUT`] at most) and
    /// opens a new one in its place, as the tungstenite engine's `Connection::replace` does
    /// (`Ok(false)`: a connection ramp keeps the place closed); `Err` names why the place ends. The closed connection's read buffer, send row, message
    /// assembler and fragment buffer serve the new one; what allocates is counted apart
    /// ([`crate::churn::counted`]).
    async fn replace(&mut self) -> Result<bool, String> {
        let shared = self.session.shared;
        // Boxed inside the counted polls, so the box is counted with the replacement: a
        // replacement's connect is far larger than the loop around it and would otherwise take
        // room in every connection's task for the whole run (see `connection_future_stays_small`).
        crate::churn::counted(&shared.churn_allocations, async { Box::pin(self.replace_uncounted()).await }).await
    }

    async fn replace_uncounted(&mut self) -> Result<bool, String> {
        let shared = self.session.shared;
        self.session.give_up_outstanding();
        self.wire.wake_on_every_echo();
        let outcome = self.close_and_wait().await;
        shared.churn_tally.borrow_mut().closed(&outcome);
        self.add_compression_counts();
        if !crate::churn::until_reopen(shared, self.session.reopen_at()).await {
            return Ok(false);
        }
        let rbuf = std::mem::take(&mut self.wire.rbuf);
        let opened = tokio::time::timeout(crate::fleet::CONNECT_TIMEOUT, connect_reusing(&shared.target, shared.size as u64, shared.batch, Some(rbuf))).await;
        let now = now_ns();
        let (stream, times) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                shared.churn_tally.borrow_mut().failed(e.cause.clone());
                return Err(format!("replacement connection failed: {}", e.cause));
            }
            Err(_) => {
                shared.churn_tally.borrow_mut().failed("timeout".into());
                return Err("replacement connection failed: timeout".into());
            }
        };
        if stream.deflate.is_some() != self.z.is_some() {
            // The send row's frames were laid out for the first answer.
            let cause = "replacement connection failed: the server answered the permessage-deflate offer differently than before";
            shared.churn_tally.borrow_mut().failed("handshake error: permessage-deflate answer changed".into());
            return Err(cause.into());
        }
        if let (Some(a), Some(z)) = (stream.deflate, self.z.as_mut()) {
            // Fresh compression contexts for the fresh connection.
            z.inflater = Inflater::new(a.server_max_window_bits, a.server_no_context_takeover, shared.size);
            z.deflater = Deflater::new(a.client_max_window_bits, a.client_no_context_takeover, 6);
        }
        let window = crate::fleet::window_end(&shared.timeline, *shared.stop.borrow());
        shared.churn_tally.borrow_mut().opened(&times, now >= shared.timeline.measured_start_ns && now < window);
        let w = &mut self.wire;
        w.tcp = stream.tcp;
        w.rbuf = stream.rbuf;
        (w.rstart, w.rend) = (stream.rstart, stream.rend);
        (w.filled, w.written, w.ctrl_len, w.ctrl_written, w.blocked) = (0, 0, 0, 0, false);
        self.assembler = MessageAssembler::new(w.rbuf.len() - MAX_HEADER_LEN);
        self.fragments.clear();
        self.oversized = false;
        if self.wire.rx & RX_KERNEL != 0 && !self.enable_kernel_stamps() {
            // Timed in user space from now on; counted once, as a connection that fell back.
            shared.rx.fell_back("setsockopt SO_TIMESTAMPNS or SO_RCVLOWAT failed");
        }
        self.session.reconnected(now);
        Ok(true)
    }

    /// Sends close 1000 and reads until the server's close frame, within [`CLOSE_TIMEOUT`];
    /// late echoes are skipped.
    async fn close_and_wait(&mut self) -> CloseOutcome {
        let rsv = if self.z.is_some() { RSV1 } else { 0 };
        let w = &mut self.wire;
        let r = tokio::time::timeout(CLOSE_TIMEOUT, async {
            // A half-written pong goes first: a close cannot be queued behind it.
            if let Err(e) = w.drain_writes().await {
                return CloseOutcome::Failed(e.to_string());
            }
            w.queue_close(code::NORMAL);
            if let Err(e) = w.drain_writes().await {
                return CloseOutcome::Failed(e.to_string());
            }
            loop {
                loop {
                    match frame::parse_with(&w.rbuf[w.rstart..w.rend], Role::Client, usize::MAX >> 1, rsv) {
                        Ok(Parsed::Frame(f)) if f.opcode == Opcode::Close => {
                            let payload = &w.rbuf[w.rstart + f.header_len..w.rstart + f.len()];
                            return match close::parse(payload) {
                                Ok(c) => CloseOutcome::Replied(c.map(|c| c.code)),
                                Err(e) => CloseOutcome::Failed(format!("protocol error from the server: {e}")),
                            };
                        }
                        Ok(Parsed::Frame(f)) => w.rstart += f.len(),
                        Ok(Parsed::Incomplete(_)) => break,
                        Err(e) => return CloseOutcome::Failed(format!("protocol error from the server: {e}")),
                    }
                }
                if w.rstart == w.rend {
                    (w.rstart, w.rend) = (0, 0);
                } else if w.rend == w.rbuf.len() {
                    w.compact();
                }
                if w.rend == w.rbuf.len() {
                    // A frame larger than the buffer: not an echo of ours, and not a close.
                    return CloseOutcome::Failed("protocol error from the server: a frame larger than any echo".into());
                }
                match tokio::io::AsyncReadExt::read(&mut w.tcp, &mut w.rbuf[w.rend..]).await {
                    Ok(0) => return CloseOutcome::NoReply,
                    Ok(n) => w.rend += n,
                    Err(e) => return CloseOutcome::Failed(describe_io_error(&e)),
                }
            }
        })
        .await;
        r.unwrap_or(CloseOutcome::TimedOut(CLOSE_TIMEOUT))
    }

    /// Normal closure (1000), waiting a bounded time for the server's close; late echoes are
    /// ignored.
    async fn close(&mut self) {
        self.wire.wake_on_every_echo();
        self.wire.queue_close(code::NORMAL);
        let w = &mut self.wire;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if w.drain_writes().await.is_err() {
                return;
            }
            let _ = w.tcp.flush().await;
            loop {
                // Skip whole frames until the server's close (or the end of the stream).
                while let Ok(Parsed::Frame(f)) = frame::parse(&w.rbuf[w.rstart..w.rend], Role::Client, usize::MAX >> 1) {
                    if f.opcode == Opcode::Close {
                        return;
                    }
                    w.rstart += f.len();
                }
                if w.rend == w.rbuf.len() {
                    w.compact();
                }
                match tokio::io::AsyncReadExt::read(&mut w.tcp, &mut w.rbuf[w.rend..]).await {
                    Ok(n) if n > 0 => w.rend += n,
                    _ => return,
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_is_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(check_response(ok.as_bytes(), key, &[]), Ok(Some((ok.len(), None))));
        assert_eq!(check_response(&ok.as_bytes()[..40], key, &[]), Ok(None));
        let wrong = ok.replace("s3pP", "AAAA");
        assert!(check_response(wrong.as_bytes(), key, &[]).unwrap_err().to_string().contains("Accept"));
        let refused = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let e = check_response(refused.as_bytes(), key, &[]).unwrap_err();
        assert!(e.to_string().contains("404"));
        assert_eq!(e.cause(), "HTTP status 404");
    }

    #[test]
    fn mask_keys_vary() {
        let mut r = XorShift::seeded(1);
        let keys: Vec<_> = (0..64).map(|_| r.mask_key()).collect();
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert!(distinct.len() > 60);
    }

    #[test]
    fn read_buffer_holds_a_batch_and_at_least_two_echoes() {
        assert_eq!(read_buffer_len(32, 2), MIN_READ_BUFFER);
        assert_eq!(read_buffer_len(64 << 10, 2), 2 * ((64 << 10) + MAX_HEADER_LEN));
        assert_eq!(read_buffer_len(64 << 10, 1), 2 * ((64 << 10) + MAX_HEADER_LEN));
        assert_eq!(read_buffer_len(100, 64), 64 * (100 + MAX_HEADER_LEN));
        // Large echoes, 8 in flight: two frames, not eight (a read takes what has arrived).
        assert_eq!(read_buffer_len(1_762_560, 8), 2 * (1_762_560 + MAX_HEADER_LEN));
        assert_eq!(read_buffer_len(256 << 10, 8), 3 * ((256 << 10) + MAX_HEADER_LEN));
    }

    /// Size of the future `f` returns, without making one.
    fn future_size<'a, F: std::future::Future>(_: impl FnOnce(ZeroStream, u32, usize, &'a ConnShared) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every connection's task holds this future (boxed) for its whole life: at a low rate it
    /// is the largest part of the load generator's memory per connection (issue 15: at most
    /// 2 KiB of RSS, see docs/benchmarks.md). It was 784 bytes when that held (017ebb4) and
    /// 1,024 when it no longer did (template, ramp, shard, churn and per-turn state inline).
    /// State a plain connection does not use belongs in a box, not under a raised bound.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn connection_future_stays_small() {
        let size = future_size(run);
        eprintln!("zero-alloc connection future: {size} bytes (ZeroConn {}, Session {}, Wire {})", std::mem::size_of::<ZeroConn<'_>>(), std::mem::size_of::<Session<'_>>(), std::mem::size_of::<Wire>());
        assert!(size <= 840, "the zero-alloc connection future is {size} bytes; box what a plain connection does not use");
    }

    #[test]
    fn the_longest_control_frame_we_send_fits_its_buffer() {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = write::header(&mut header, true, Opcode::Pong, MAX_CONTROL_PAYLOAD, Some([1, 2, 3, 4]));
        assert_eq!(n + MAX_CONTROL_PAYLOAD, SENT_CONTROL_FRAME);
    }

    #[test]
    fn batches_follow_what_is_in_flight() {
        // 10,000 connections at 100 msgs/s: one message per 100 s each; the floor of two.
        assert_eq!(expected_batch(Some(100.0), 10_000, 1), 2);
        // 50 connections at 100,000 msgs/s: 2,000/s each, 20 in 10 ms.
        assert_eq!(expected_batch(Some(100_000.0), 50, 1), 20);
        assert_eq!(expected_batch(Some(1e9), 1, 1), MAX_BATCH);
        assert_eq!(expected_batch(None, 1, 16), 16);
        assert_eq!(expected_batch(None, 1, 100_000), MAX_BATCH);
    }
}
