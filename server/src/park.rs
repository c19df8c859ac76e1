//! Parked sockets: connections that wait for input without a task, a tokio registration or a
//! buffer.
//!
//! A tokio task (≥ 640 bytes for ours) and a registration (256 bytes) are most of what a quiet
//! connection costs. A socket with nothing to do is therefore taken out of tokio and kept in
//! this module's [`Lot`]: its descriptor and a few words of state in a slab, its readiness
//! watched by one epoll set of the server's own (`EPOLLONESHOT`), which the accept task polls
//! through one `AsyncFd`. When the socket becomes readable, or its deadline passes, the accept
//! task takes it out and spawns a task for it again.
//!
//! Two kinds wait here: a socket that has not sent its first bytes (a pending handshake, parked
//! as it is accepted) and a zero-alloc connection idle for [`PARK_AFTER`] with nothing half-read
//! or unwritten (parked by its engine). Waking one costs a registration and a task (a few
//! allocations), so only connections idle that long are parked: a busy connection never is,
//! and its messages stay allocation-free.
//!
//! Deadlines (the handshake timeout, the keep-alive's next ping or pong timeout) are checked by
//! a sweep over the slab, at most once per [`SWEEP_EVERY`]: a deadline is met that much late at
//! worst. This module must not read from or write to a socket; what a woken socket needs is the
//! task's business.

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::Instant;

use crate::limits::KeepAlive;
use crate::metrics::{ParkedConnection, ParkedSocket};

/// How long a zero-alloc connection stays quiet (no input, nothing to write) before it gives
/// up its task and is parked.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// The least time between two sweeps for due deadlines.
pub const SWEEP_EVERY: Duration = Duration::from_millis(50);

/// Sockets woken by one look at the epoll set, at most.
const EVENTS: usize = 256;

/// Slab entries made room for up front, so that parking the first connections allocates nothing.
const INITIAL: usize = 1024;

/// An idle upgraded zero-alloc connection with nothing in flight: all its engine keeps.
#[derive(Debug)]
pub struct IdleConnection {
    pub socket: TcpStream,
    pub keep_alive: KeepAlive,
    /// Its place in the open-connections gauge, held while parked.
    pub open: ParkedConnection,
}

/// A socket in the lot, and what it waits for.
#[derive(Debug)]
pub enum Parked {
    /// Accepted; its client has sent nothing yet. `deadline`: the handshake timeout.
    Pending {
        socket: TcpStream,
        deadline: Instant,
        slot: ParkedSocket,
    },
    /// An upgraded connection; `deadline`: its keep-alive's next step (ping or pong timeout).
    Idle {
        conn: IdleConnection,
        deadline: Instant,
        slot: Option<ParkedSocket>,
    },
}

impl Parked {
    fn socket(&self) -> &TcpStream {
        match self {
            Self::Pending { socket, .. } => socket,
            Self::Idle { conn, .. } => &conn.socket,
        }
    }

    fn deadline(&self) -> Instant {
        match self {
            Self::Pending { deadline, .. } | Self::Idle { deadline, .. } => *deadline,
        }
    }
}

/// Why a socket left the lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Readable (bytes, end of stream or an error: reading will tell).
    Ready,
    /// Its deadline passed.
    Due,
}

#[derive(Debug)]
struct Inner {
    slab: Slab<Parked>,
    /// No more parking: the server is shutting down.
    closed: bool,
    /// The earliest deadline in the slab, or earlier (removals do not move it).
    next_due: Option<Instant>,
}

/// The server's parked sockets (see the module docs).
#[derive(Debug)]
pub struct Lot {
    epoll: OwnedFd,
    inner: Mutex<Inner>,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Lot {
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes flags only; a non-negative result is a new descriptor.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Self {
            // SAFETY: `fd` was just created and is owned by nothing else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            inner: Mutex::new(Inner {
                slab: Slab::with_capacity(INITIAL),
                closed: false,
                next_due: None,
            }),
        })
    }

    /// The epoll set (a descriptor of its own), for the accept task to register with its
    /// runtime.
    pub fn readiness(&self) -> io::Result<AsyncFd<OwnedFd>> {
        let fd = self.epoll.try_clone()?;
        // SAFETY: the AsyncFd owns `fd`, which stays open and the same until it drops.
        Ok(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while parking leaves the slab consistent (every step is one call).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether parking is still possible (false once the server shuts down).
    pub fn is_open(&self) -> bool {
        !self.lock().closed
    }

    /// Parks `parked` until its socket is readable or its deadline passes. Hands it back when
    /// the lot is closed or the socket cannot be watched; the caller then keeps serving it.
    pub fn park(&self, parked: Parked) -> Result<(), Parked> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(parked);
        }
        let entry = inner.slab.vacant_entry();
        let key = entry.key();
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
            u64: key as u64,
        };
        let fd = parked.socket().as_raw_fd();
        // SAFETY: both descriptors are open; the event is a valid, initialised struct.
        let added =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if added < 0 {
            return Err(parked);
        }
        let deadline = parked.deadline();
        entry.insert(parked);
        inner.next_due = Some(inner.next_due.map_or(deadline, |d| d.min(deadline)));
        Ok(())
    }

    /// Takes the entry `key` out of the slab and the epoll set.
    fn take(&self, inner: &mut Inner, key: usize) -> Option<Parked> {
        let parked = inner.slab.try_remove(key)?;
        // SAFETY: the descriptor is open (owned by `parked`); a null event is allowed for DEL.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                parked.socket().as_raw_fd(),
                std::ptr::null_mut(),
            );
        }
        Some(parked)
    }

    /// The next time a sweep is due, if anything is parked.
    pub fn next_due(&self) -> Option<Instant> {
        self.lock().next_due
    }

    /// Moves into `woken` every parked socket that is readable (as `epoll` says) and, when a
    /// sweep is due (`now` past the earliest deadline), every one whose deadline has passed.
    /// Pending when nothing is readable and no sweep is due. Never blocks.
    pub fn poll_woken(
        &self,
        epoll: &AsyncFd<OwnedFd>,
        cx: &mut Context<'_>,
        woken: &mut Vec<(Parked, Wake)>,
    ) -> Poll<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        while let Poll::Ready(guard) = epoll.poll_read_ready(cx) {
            let Ok(mut guard) = guard else { break };
            // SAFETY: the buffer has room for EVENTS events; a zero timeout never blocks.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    EVENTS as i32,
                    0,
                )
            };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                guard.clear_ready();
                continue;
            }
            let mut inner = self.lock();
            for e in &events[..n as usize] {
                if let Some(p) = self.take(&mut inner, e.u64 as usize) {
                    woken.push((p, Wake::Ready));
                }
            }
            if (n as usize) < EVENTS {
                guard.clear_ready();
            } else {
                // More may wait; the caller comes back after spawning these.
                break;
            }
        }
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.next_due.is_some_and(|due| due <= now) {
            let due: Vec<usize> = inner
                .slab
                .iter()
                .filter(|(_, p)| p.deadline() <= now)
                .map(|(key, _)| key)
                .collect();
            for key in due {
                if let Some(p) = self.take(&mut inner, key) {
                    woken.push((p, Wake::Due));
                }
            }
            // The next sweep: the earliest deadline left, but not sooner than SWEEP_EVERY.
            inner.next_due = inner
                .slab
                .iter()
                .map(|(_, p)| p.deadline())
                .min()
                .map(|d| d.max(now + SWEEP_EVERY));
        }
        if woken.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// Closes the lot and hands back everything parked in it.
    pub fn close(&self) -> Vec<Parked> {
        let mut inner = self.lock();
        inner.closed = true;
        let keys: Vec<usize> = inner.slab.iter().map(|(key, _)| key).collect();
        let parked = keys
            .into_iter()
            .filter_map(|key| self.take(&mut inner, key))
            .collect();
        inner.next_due = None;
        parked
    }

    /// How many sockets are parked now.
    pub fn len(&self) -> usize {
        self.lock().slab.len()
    }
}

/// Whether `socket` has input now (bytes, end of stream or an error) without reading it: one
/// non-blocking peek of one byte.
pub fn has_input(socket: &impl AsRawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte buffer on the stack; MSG_PEEK leaves the byte in the socket.
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    !(n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (client, server)
    }

    fn pending(socket: TcpStream, deadline: Instant) -> Parked {
        Parked::Pending {
            socket,
            deadline,
            slot: ParkedSocket::for_test(),
        }
    }

    async fn next(lot: &Lot, epoll: &AsyncFd<OwnedFd>) -> Vec<(Parked, Wake)> {
        let mut woken = Vec::new();
        let wait = std::future::poll_fn(|cx| {
            let ready = lot.poll_woken(epoll, cx, &mut woken);
            // A sweep that is due but found nothing waits for the next.
            if ready.is_pending() {
                if let Some(due) = lot.next_due() {
                    let waker = cx.waker().clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until(due).await;
                        waker.wake();
                    });
                }
            }
            ready
        });
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("woken within 10 s");
        woken
    }

    #[tokio::test]
    async fn a_socket_wakes_when_its_client_writes_and_not_before() {
        let lot = Lot::new().unwrap();
        let epoll = lot.readiness().unwrap();
        let (mut quiet_client, quiet) = pair();
        let (mut client, server) = pair();
        assert!(!has_input(&server));
        let far = Instant::now() + Duration::from_secs(3600);
        lot.park(pending(quiet, far)).unwrap();
        lot.park(pending(server, far)).unwrap();
        assert_eq!(lot.len(), 2);
        client.write_all(b"G").unwrap();
        let woken = next(&lot, &epoll).await;
        assert_eq!(woken.len(), 1);
        let (parked, wake) = &woken[0];
        assert_eq!(*wake, Wake::Ready);
        assert!(has_input(parked.socket()));
        assert_eq!(lot.len(), 1);
        // The other one is still watched.
        quiet_client.write_all(b"G").unwrap();
        let woken = next(&lot, &epoll).await;
        assert_eq!(woken.len(), 1);
        assert_eq!(lot.len(), 0);
    }

    #[tokio::test]
    async fn a_socket_wakes_at_its_deadline_and_close_hands_back_the_rest() {
        let lot = Lot::new().unwrap();
        let epoll = lot.readiness().unwrap();
        let (_c1, soon) = pair();
        let (_c2, later) = pair();
        lot.park(pending(soon, Instant::now() + Duration::from_millis(100)))
            .unwrap();
        lot.park(pending(later, Instant::now() + Duration::from_secs(3600)))
            .unwrap();
        let woken = next(&lot, &epoll).await;
        assert_eq!(woken.len(), 1);
        assert_eq!(woken[0].1, Wake::Due);
        let rest = lot.close();
        assert_eq!(rest.len(), 1);
        assert!(!lot.is_open());
        let (_c3, refused) = pair();
        assert!(lot.park(pending(refused, Instant::now())).is_err());
    }
}
