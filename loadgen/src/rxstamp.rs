//! Kernel receive timestamps for the zero-alloc client's open loop (`--rx-timestamps kernel`).
//!
//! An open-loop worker sleeps between send deadlines. Timing an echo in user space needs the
//! thread awake when it arrives, which is a second wake-up per message (tokio's epoll wakes the
//! thread on `EPOLLIN` whatever task waits). Here the kernel stamps each segment as it is
//! delivered to the socket (`SO_TIMESTAMPNS`), `SO_RCVLOWAT` keeps a single echo from raising
//! `EPOLLIN`, and the connection reads its echoes at the worker's next wake-up with `recvmsg`,
//! taking their arrival time from the stamp.
//!
//! What the stamp means, as found on Linux 6.18: TCP hands out the stamp of the last segment a
//! `recvmsg` consumed, and a segment that arrives while an earlier one is still unread is merged
//! into it and takes the later stamp. One echo per read is exact; when several echoes are read
//! at once, the earlier ones carry the last one's arrival (an upper bound), and are counted.
//! The stamp is `CLOCK_REALTIME`; it is converted to the monotonic clock with an offset
//! measured when the worker starts and re-measured now and then (a step of the wall clock shows
//! as a change of offset, which is reported).
//!
//! Nothing here allocates.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;

use wsbench_core::clock::now_ns;

/// Echoes whose stamp is older than this are refused (a broken clock, not a slow server: an
/// echo is read within milliseconds of arriving), as are stamps from the future.
const MAX_STAMP_AGE_NS: u64 = 10_000_000_000;
/// The offset is measured again after this many conversions.
const RECHECK_EVERY: u32 = 4096;

/// Turns kernel receive timestamps on for a socket and raises its low-water mark to `lowat`
/// bytes: a single echo no longer wakes the reader, a read buffer's worth still does.
pub fn enable(fd: RawFd, lowat: usize) -> io::Result<()> {
    setsockopt(fd, libc::SO_TIMESTAMPNS, 1)?;
    set_lowat(fd, lowat)
}

/// Sets `SO_RCVLOWAT` (1: every segment wakes the reader again, as without kernel stamps).
pub fn set_lowat(fd: RawFd, lowat: usize) -> io::Result<()> {
    setsockopt(fd, libc::SO_RCVLOWAT, i32::try_from(lowat).unwrap_or(i32::MAX))
}

fn setsockopt(fd: RawFd, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: a plain setsockopt on a descriptor the caller owns, with an int value.
    let rc = unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, name, (&value as *const libc::c_int).cast(), std::mem::size_of::<libc::c_int>() as libc::socklen_t) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads what is there without waiting. Returns the bytes read (0: the peer closed) and the
/// receive stamp of the last segment read (`CLOCK_REALTIME` ns; 0 when the kernel gave none).
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, u64)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // Room for one `cmsghdr` and a `timespec`, aligned for both.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid (no name, no buffers); the pointers set below outlive
    // the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` describes live buffers of the given lengths.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = 0;
    // SAFETY: the CMSG_* walk stays within `msg_controllen`, which the kernel set; the data of
    // an SCM_TIMESTAMPNS message is a timespec, read unaligned to be safe.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

/// `CLOCK_REALTIME` less `CLOCK_MONOTONIC` now, in ns: the narrowest of a few back-to-back
/// readings (the realtime reading taken between two monotonic ones).
fn measure_offset() -> i64 {
    let mut best = (u64::MAX, 0i64);
    for _ in 0..5 {
        let a = now_ns();
        let r = realtime_ns();
        let b = now_ns();
        if b - a < best.0 {
            best = (b - a, r as i64 - (a + (b - a) / 2) as i64);
        }
    }
    best.1
}

fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// What kernel stamping did on one worker (added over workers for `summary.json`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RxCounts {
    /// Connections that took their echoes' arrival from the kernel, and those that could not
    /// (see `fallback`).
    pub kernel_connections: u64,
    pub user_connections: u64,
    /// Echoes timed by a kernel stamp.
    pub kernel_echoes: u64,
    /// Of those, echoes read together with a later one: their stamp is the later one's arrival.
    pub shared_stamps: u64,
    /// Stamps refused (missing, from the future or implausibly old): those echoes were timed
    /// when read.
    pub refused: u64,
    /// Reads at a wake-up that found nothing yet.
    pub empty_reads: u64,
    /// Largest change of the realtime-to-monotonic offset seen during the run, in ns.
    pub offset_change_ns: u64,
}

impl RxCounts {
    pub fn add(&mut self, o: &RxCounts) {
        self.kernel_connections += o.kernel_connections;
        self.user_connections += o.user_connections;
        self.kernel_echoes += o.kernel_echoes;
        self.shared_stamps += o.shared_stamps;
        self.refused += o.refused;
        self.empty_reads += o.empty_reads;
        self.offset_change_ns = self.offset_change_ns.max(o.offset_change_ns);
    }
}

/// Bounds of [`RxClock::wait_for_echo`].
const MIN_ECHO_WAIT_NS: u64 = 10_000;
const MAX_ECHO_WAIT_NS: u64 = 2_000_000;

/// One worker's conversion of kernel stamps and its counts.
#[derive(Debug)]
pub struct RxClock {
    /// About the 90th percentile of send-to-arrival times lately (see [`Self::wait_for_echo`]).
    echo_wait: Cell<u64>,
    offset: Cell<i64>,
    until_recheck: Cell<u32>,
    pub counts: Cell<RxCounts>,
    /// Why a connection fell back to user-space timing (the first reason seen).
    pub fallback: Cell<Option<&'static str>>,
    /// Per connection slot of the worker: when it last read (or tried to). Here, not in the
    /// connection: every connection's task would carry it, stamps or not.
    last_read: Box<[Cell<u64>]>,
}

impl RxClock {
    /// The clock of a worker with `slots` connection places.
    pub fn new(slots: usize) -> Self {
        Self {
            echo_wait: Cell::new(50_000),
            offset: Cell::new(measure_offset()),
            until_recheck: Cell::new(RECHECK_EVERY),
            counts: Cell::default(),
            fallback: Cell::new(None),
            last_read: (0..slots).map(|_| Cell::new(0)).collect(),
        }
    }

    #[inline]
    pub fn last_read(&self, slot: usize) -> u64 {
        self.last_read.get(slot).map_or(0, Cell::get)
    }

    #[inline]
    pub fn set_last_read(&self, slot: usize, at: u64) {
        if let Some(c) = self.last_read.get(slot) {
            c.set(at);
        }
    }

    /// The monotonic instant of kernel stamp `stamp`, read at monotonic `now`; `now` itself when
    /// the stamp is missing or implausible (counted as refused).
    pub fn arrival(&self, stamp: u64, now: u64) -> u64 {
        let left = self.until_recheck.get();
        if left == 0 {
            self.recheck();
        } else {
            self.until_recheck.set(left - 1);
        }
        let at = (stamp as i64).wrapping_sub(self.offset.get());
        if stamp == 0 || at <= 0 || at as u64 > now || now - at as u64 > MAX_STAMP_AGE_NS {
            self.update(|c| c.refused += 1);
            return now;
        }
        at as u64
    }

    /// How long after sending a read is worth a system call: about the 90th percentile of
    /// send-to-arrival times of this worker's recent echoes. Reading sooner mostly finds
    /// nothing; reading later costs nothing in accuracy (the stamp says when the echo came),
    /// and when the server slows down, so do the reads.
    #[inline]
    pub fn wait_for_echo(&self) -> u64 {
        self.echo_wait.get()
    }

    /// Feeds one echo's send-to-arrival time to [`Self::wait_for_echo`]: up by 1/8 when above,
    /// down by 1/72 when not, which settles where one in ten is above.
    #[inline]
    pub fn observe_echo(&self, sent_to_arrival: u64) {
        let q = self.echo_wait.get();
        let q = if sent_to_arrival > q { q + q / 8 } else { q - q / 72 };
        self.echo_wait.set(q.clamp(MIN_ECHO_WAIT_NS, MAX_ECHO_WAIT_NS));
    }

    /// Measures the offset again; a wall-clock step shows as a change, which is kept.
    fn recheck(&self) {
        let new = measure_offset();
        let change = new.abs_diff(self.offset.get());
        self.update(|c| c.offset_change_ns = c.offset_change_ns.max(change));
        self.offset.set(new);
        self.until_recheck.set(RECHECK_EVERY);
    }

    #[inline]
    pub fn update(&self, f: impl FnOnce(&mut RxCounts)) {
        let mut c = self.counts.get();
        f(&mut c);
        self.counts.set(c);
    }

    /// A connection could not use kernel stamps, for `why`.
    pub fn fell_back(&self, why: &'static str) {
        self.update(|c| c.user_connections += 1);
        if self.fallback.get().is_none() {
            self.fallback.set(Some(why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_stamp_converts_to_the_monotonic_clock_and_bad_ones_are_refused() {
        let rx = RxClock::new(1);
        let now = now_ns();
        let stamp = realtime_ns();
        let at = rx.arrival(stamp, now_ns());
        // Read after `now` on both clocks: within a few µs of it, and never after the reading.
        assert!(at >= now.saturating_sub(50_000), "{at} vs {now}");
        assert_eq!(rx.counts.get().refused, 0);
        let later = now_ns();
        assert_eq!(rx.arrival(0, later), later);
        assert_eq!(rx.arrival(stamp + 60_000_000_000, later), later, "from the future");
        assert_eq!(rx.arrival(stamp - 60_000_000_000, later), later, "a minute old");
        assert_eq!(rx.counts.get().refused, 3);
    }

    /// The kernel stamps a loopback segment between the peer's write and our read, and one echo
    /// below the low-water mark leaves the socket unreadable to poll.
    #[test]
    fn loopback_segments_are_stamped_between_send_and_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        enable(client.as_raw_fd(), 1000).unwrap();
        // The kernel turns stamping on for the whole stack asynchronously (a static key flipped
        // from a work queue): segments that come at once may carry none.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let rx = RxClock::new(1);
        for _ in 0..3 {
            let before = now_ns();
            server.write_all(&[7u8; 40]).unwrap();
            let mut pfd = libc::pollfd { fd: client.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, 20) };
            assert_eq!(ready, 0, "40 bytes below a low-water mark of 1000 must not be readable");
            let mut buf = [0u8; 100];
            let (n, stamp) = recv(client.as_raw_fd(), &mut buf).unwrap();
            let read_at = now_ns();
            assert_eq!(n, 40);
            let at = rx.arrival(stamp, read_at);
            assert_eq!(rx.counts.get().refused, 0, "the kernel gave a usable stamp");
            // Written before `before + ε` (the offset's uncertainty) and read 20 ms later.
            assert!(at + 20_000 >= before && at < read_at - 10_000_000, "stamp {} ns after the write, read {} ns after it", at as i64 - before as i64, read_at - before);
        }
        // Nothing there: the read says so without waiting.
        let mut buf = [0u8; 100];
        assert_eq!(recv(client.as_raw_fd(), &mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(server);
        assert_eq!(recv(client.as_raw_fd(), &mut buf).unwrap().0, 0, "the peer's close reads as 0");
        let _ = client.read(&mut buf);
    }
}
