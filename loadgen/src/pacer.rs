//! Precise wake-ups for open-loop sending: one Linux timerfd per connection, polled by tokio.
//!
//! `tokio::time::sleep` rounds to the millisecond and wakes 0.6–1.5 ms late, which is 10–25× the
//! round trip being measured; a timerfd armed with an absolute `CLOCK_MONOTONIC` deadline and
//! registered through [`AsyncFd`] wakes within tens of microseconds. `CLOCK_MONOTONIC` is the
//! clock of [`wsbench_core::clock::now_ns`], so deadlines are the schedule's intended times as is.
//!
//! The pacer only wakes its task; deciding what is due and recording how late the wake-up was is
//! the connection loop's business.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// A one-shot timer that fires at an absolute monotonic instant.
#[derive(Debug)]
pub struct Pacer {
    fd: AsyncFd<OwnedFd>,
}

impl Pacer {
    /// Creates a disarmed timer. Must be called inside a tokio runtime with I/O enabled.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the returned descriptor is checked before it is owned.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the AsyncFd owns `fd`, so the descriptor stays open and the same for its whole life.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(Self { fd })
    }

    /// Arms the timer for the absolute monotonic instant `deadline_ns`, replacing any earlier
    /// deadline. A deadline in the past fires at once.
    pub fn set(&self, deadline_ns: u64) -> io::Result<()> {
        // An all-zero it_value would disarm the timer; an absolute time of 1 ns is long past.
        let deadline_ns = deadline_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t, tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long },
        };
        // SAFETY: the descriptor is a live timerfd and `spec` is a valid itimerspec.
        let rc = unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until the armed deadline has passed. Cancel-safe: dropping the future loses nothing,
    /// the expiry stays readable on the descriptor.
    pub async fn wait(&self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let read = guard.try_io(|fd| {
                let mut expirations = 0u64;
                // SAFETY: reading 8 bytes into a u64 is the timerfd protocol.
                let n = unsafe { libc::read(fd.as_raw_fd(), (&mut expirations as *mut u64).cast(), 8) };
                if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
            });
            match read {
                Ok(Ok(())) => {
                    // The expiry is consumed and the timer is one-shot: nothing more can be read
                    // until it is armed again, so skip the read that would only say EAGAIN.
                    guard.clear_ready();
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                // Stale readiness (the timer was re-armed after it fired): wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench_core::clock::now_ns;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn fires_at_the_deadline_not_before() {
        runtime().block_on(async {
            let p = Pacer::new().unwrap();
            for _ in 0..5 {
                let deadline = now_ns() + 2_000_000;
                p.set(deadline).unwrap();
                p.wait().await.unwrap();
                assert!(now_ns() >= deadline);
            }
        });
    }

    #[test]
    fn a_past_deadline_fires_at_once_and_rearming_replaces() {
        runtime().block_on(async {
            let p = Pacer::new().unwrap();
            p.set(now_ns() + 60_000_000_000).unwrap();
            // Re-armed to the past before the first deadline: must not wait a minute.
            p.set(1).unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(5), p.wait()).await.expect("fires").unwrap();
        });
    }
}
