//! The TCP stream under each WebSocket, with every read capped ([`read_cap`]) so that a burst
//! of echoes never makes tungstenite grow its read buffer in the middle of a run.
//!
//! tungstenite 0.29 reads into a `BytesMut` of `read_buffer_size` bytes, and after parsing each
//! frame header reserves the frame's length, even when the frame is already buffered. When that
//! reserve finds too little room at the buffer's end, `BytesMut` moves the unread bytes to the
//! front if they are no longer than what was already consumed, and otherwise doubles the buffer:
//! a heap allocation at whatever moment the first large burst of echoes arrives (in open loop,
//! a scheduling hiccup of a few milliseconds is enough). Reads capped as [`read_cap`] computes
//! always leave the unread part short enough to be moved, so the buffer keeps its size.
//! Writes pass through untouched.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest read that never makes tungstenite grow a read buffer of `buffer` bytes when
/// every frame is at most `max_frame` bytes (header included); `None` when no cap helps
/// (frames over about a third of the buffer, which grow it at the first message anyway).
///
/// When tungstenite reserves for a frame, the unread bytes are less than one frame and its
/// header (what was there before the last read) plus one read: `len < max_frame + 14 + cap`.
/// It only reallocates when the room left, `buffer - consumed - len`, is below a frame and
/// `consumed < len`. Keeping `buffer >= 2 * len + max_frame` rules the second out whenever the
/// first holds, which gives `cap <= (buffer - 3 * max_frame - 28) / 2`.
pub fn read_cap(buffer: usize, max_frame: usize) -> Option<usize> {
    const HEADER: usize = 14;
    let cap = buffer.checked_sub(3 * max_frame + 2 * HEADER)? / 2;
    // Tiny reads would cost a system call per few bytes; better to let the buffer grow once.
    (cap >= 1024).then_some(cap)
}

/// The first bytes a stream read, kept while a handshake may still fail: tungstenite's error for
/// a response it cannot use (an `HTTP/1.0 200 OK`, say) does not carry the response.
pub type ReadHead = Arc<Mutex<Vec<u8>>>;

/// How much of the response [`CappedReads::capture_head`] keeps: enough for a status line.
const HEAD_LIMIT: usize = 256;

/// A stream whose reads return at most `max_read` bytes each.
#[derive(Debug)]
pub struct CappedReads<S> {
    inner: S,
    max_read: usize,
    head: Option<ReadHead>,
}

impl<S> CappedReads<S> {
    pub fn new(inner: S, max_read: usize) -> Self {
        assert!(max_read > 0, "a read cap of 0 would read nothing, ever");
        Self { inner, max_read, head: None }
    }

    /// Keeps the first bytes read in the returned buffer until [`Self::end_capture`].
    pub fn capture_head(&mut self) -> ReadHead {
        let head = ReadHead::default();
        self.head = Some(head.clone());
        head
    }

    /// Stops keeping what is read (the handshake is over).
    pub fn end_capture(&mut self) {
        self.head = None;
    }
}

/// Appends what a read returned to the captured head, up to [`HEAD_LIMIT`] bytes.
fn keep(head: &Option<ReadHead>, read: &[u8]) {
    if let Some(head) = head {
        let mut head = head.lock().unwrap_or_else(|e| e.into_inner());
        let room = HEAD_LIMIT.saturating_sub(head.len());
        head.extend_from_slice(&read[..read.len().min(room)]);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CappedReads<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() <= this.max_read {
            let before = buf.filled().len();
            let ready = Pin::new(&mut this.inner).poll_read(cx, buf);
            keep(&this.head, &buf.filled()[before..]);
            return ready;
        }
        // Read into the first `max_read` bytes of the free space, then account for them in `buf`.
        let mut capped = buf.take(this.max_read);
        let ready = Pin::new(&mut this.inner).poll_read(cx, &mut capped)?;
        debug_assert!(ready.is_pending() || capped.filled().len() <= this.max_read);
        let (n, fresh) = (capped.filled().len(), capped.initialized().len());
        // SAFETY: `capped` views the unfilled part of `buf`; the inner stream initialised its
        // first `fresh` bytes and filled its first `n`, so those bytes of `buf` are initialised.
        unsafe { buf.assume_init(fresh) };
        let before = buf.filled().len();
        buf.advance(n);
        keep(&this.head, &buf.filled()[before..]);
        ready.map(Ok)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CappedReads<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn caps_shrink_as_frames_grow() {
        assert_eq!(read_cap(8192, 32 + 14), Some((8192 - 138 - 28) / 2));
        assert_eq!(read_cap(8192, 1024 + 14), Some(2525));
        assert_eq!(read_cap(8192, 2048 + 14), None, "too small a cap to be worth it");
        assert_eq!(read_cap(8192, 64 << 10), None);
    }

    #[tokio::test]
    async fn reads_are_capped_and_nothing_is_lost() {
        let (mut a, b) = tokio::io::duplex(64 << 10);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        a.write_all(&data).await.unwrap();
        drop(a);
        let mut capped = CappedReads::new(b, 1000);
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        loop {
            let n = capped.read(&mut buf).await.unwrap();
            assert!(n <= 1000, "read {n} bytes");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn the_head_is_kept_until_the_capture_ends() {
        let (mut a, b) = tokio::io::duplex(4096);
        let mut capped = CappedReads::new(b, 1000);
        let head = capped.capture_head();
        a.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = capped.read(&mut buf).await.unwrap();
        assert_eq!(&head.lock().unwrap()[..], &buf[..n]);
        capped.end_capture();
        a.write_all(b"more").await.unwrap();
        assert_eq!(capped.read(&mut buf).await.unwrap(), 4);
        assert_eq!(head.lock().unwrap().len(), n, "nothing is kept after the capture ended");
    }

    #[tokio::test]
    async fn small_reads_and_writes_pass_through() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut capped = CappedReads::new(a, 1000);
        capped.write_all(b"ping").await.unwrap();
        let mut four = [0u8; 4];
        b.read_exact(&mut four).await.unwrap();
        assert_eq!(&four, b"ping");
        b.write_all(b"pong").await.unwrap();
        let mut small = [0u8; 2];
        assert_eq!(capped.read(&mut small).await.unwrap(), 2);
        assert_eq!(&small, b"po");
    }
}
