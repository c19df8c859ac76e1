//! A receiver's queue of whole frames for the zero-alloc engine: what broadcast and push write
//! into and the receiving connection writes out to its socket.
//!
//! One fixed ring of bytes per receiver, allocated when it joins and never grown, so queueing a
//! frame and writing it out allocate nothing. Frames go in whole, under the lock, and the
//! receiving connection is the only writer of its socket: when a receiver has a mailbox, its own
//! control frames (pongs) go through it too, so frames never interleave on the wire.
//! When a frame does not fit, the receiver is slow: the frame is dropped, the mailbox is marked,
//! and the connection closes with 1008, so one stalled receiver never stalls its sender.

use std::io;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// Bytes of frames a receiver may have queued and unwritten. Larger broadcasts are refused.
pub const QUEUE_BYTES: usize = 256 * 1024;

/// What became of a frame offered to a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Yes,
    /// The queue was full: the frame was dropped and the receiver is now slow.
    Full,
    /// The receiver was slow already: dropped, and counted once before.
    Slow,
}

#[derive(Debug)]
struct Ring {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
    waker: Option<Waker>,
    slow: bool,
}

impl Ring {
    fn push(&mut self, bytes: &[u8]) {
        let cap = self.buf.len();
        let tail = (self.head + self.len) % cap;
        let first = bytes.len().min(cap - tail);
        self.buf[tail..tail + first].copy_from_slice(&bytes[..first]);
        self.buf[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        self.len += bytes.len();
    }

    fn front(&self) -> &[u8] {
        let end = (self.head + self.len).min(self.buf.len());
        &self.buf[self.head..end]
    }

    fn consume(&mut self, n: usize) {
        self.len -= n;
        self.head = if self.len == 0 {
            0
        } else {
            (self.head + n) % self.buf.len()
        };
    }
}

/// One receiver's queue (see the module docs).
#[derive(Debug)]
pub struct Mailbox {
    ring: Mutex<Ring>,
}

impl Mailbox {
    pub fn new() -> Self {
        Self::with_capacity(QUEUE_BYTES)
    }

    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                buf: vec![0u8; bytes].into_boxed_slice(),
                head: 0,
                len: 0,
                waker: None,
                slow: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves whole frames or none: the ring is still sound.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one whole frame, `head` then `payload`, and wakes the receiver.
    pub fn push_frame(&self, head: &[u8], payload: &[u8]) -> Queued {
        let mut ring = self.lock();
        if ring.slow {
            return Queued::Slow;
        }
        let n = head.len() + payload.len();
        if ring.len + n > ring.buf.len() {
            ring.slow = true;
            if let Some(w) = &ring.waker {
                w.wake_by_ref();
            }
            return Queued::Full;
        }
        let was_empty = ring.len == 0;
        ring.push(head);
        ring.push(payload);
        if was_empty {
            if let Some(w) = &ring.waker {
                w.wake_by_ref();
            }
        }
        Queued::Yes
    }

    /// Queues the receiving connection's own frames (`bytes` holds whole frames); false when
    /// they do not fit, which makes the receiver slow.
    pub fn push_own(&self, bytes: &[u8]) -> bool {
        bytes.is_empty() || self.push_frame(bytes, &[]) == Queued::Yes
    }

    /// True once a frame did not fit: the connection must close (1008).
    pub fn is_slow(&self) -> bool {
        self.lock().slow
    }

    /// Writes what is queued through `write` (which returns how many bytes the socket took, 0
    /// when it is full and will wake `cx`); `Ready(Ok)` when the queue is empty.
    pub fn poll_flush(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&mut Context<'_>, &[u8]) -> io::Result<usize>,
    ) -> Poll<io::Result<()>> {
        let mut ring = self.lock();
        while ring.len > 0 {
            let n = write(cx, ring.front())?;
            if n == 0 {
                return Poll::Pending;
            }
            ring.consume(n);
        }
        // Only an empty queue needs our waker: a full socket wakes us itself.
        if !ring.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            ring.waker = Some(cx.waker().clone());
        }
        Poll::Ready(Ok(()))
    }
}

impl Default for Mailbox {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn drain(m: &Mailbox, take: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        let _ = m.poll_flush(&mut cx, |_, b| {
            let n = b.len().min(take.saturating_sub(out.len()));
            out.extend_from_slice(&b[..n]);
            Ok(n)
        });
        out
    }

    #[test]
    fn frames_come_out_whole_and_in_order_across_the_wrap() {
        let m = Mailbox::with_capacity(10);
        assert_eq!(m.push_frame(b"ab", b"cde"), Queued::Yes);
        assert_eq!(drain(&m, 4), b"abcd");
        assert_eq!(m.push_frame(b"fg", b"hijk"), Queued::Yes);
        assert_eq!(drain(&m, 100), b"efghijk");
        assert!(!m.is_slow());
    }

    #[test]
    fn a_frame_that_does_not_fit_makes_the_receiver_slow() {
        let m = Mailbox::with_capacity(8);
        assert_eq!(m.push_frame(b"12", b"3456"), Queued::Yes);
        assert_eq!(m.push_frame(b"78", b"9"), Queued::Full);
        assert!(m.is_slow());
        assert_eq!(m.push_frame(b"", b"x"), Queued::Slow);
        // What was queued before still goes out whole.
        assert_eq!(drain(&m, 100), b"123456");
    }
}
