//! Giving freed memory back to the OS.
//!
//! glibc keeps freed heap memory for reuse: after a flood of connections closes, the pages
//! their buffers and tasks used stay resident, and a second flood on another thread's arena
//! adds to them. This module runs one thread that, at most once per [`PERIOD`], asks glibc to
//! return free pages (`malloc_trim(0)`, which also releases whole free pages inside the heap)
//! when sockets have closed (or idle connections were parked, or quiet ones gave back the large
//! buffers they kept) since it last did. It never trims while nothing closes, so a
//! steady benchmark is not disturbed; the allocator itself (and its counting) is unchanged.
//!
//! [`fix_mmap_threshold`] keeps large allocations in their own mappings: glibc otherwise raises
//! its mmap threshold to the size of each large block freed (up to 32 MiB), after which a
//! claimed 16 MB frame is carved from the heap, where its neighbour's chunk header touches one
//! more page per claim and freed blocks stay resident.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::metrics::Metrics;

/// How often the trimmer looks.
const PERIOD: Duration = Duration::from_secs(1);

/// The running trimmer; stops when dropped.
#[derive(Debug)]
pub struct Trimmer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Trimmer {
    pub fn start(metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wsbench-trim".into())
            .spawn(move || {
                // A parked connection frees its task and buffers as a closed one does, and a
                // quiet one its kept large-message buffer.
                let freed =
                    || metrics.sockets_closed() + metrics.parks() + metrics.buffers_released();
                let mut seen = freed();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(PERIOD) {
                    let closed = freed();
                    if closed != seen {
                        seen = closed;
                        release_free_memory();
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Trimmer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Allocations from this size up get mappings of their own, always: only their touched pages are
/// resident, and freeing one unmaps it. Messages below it keep reusing heap memory.
const MMAP_THRESHOLD: usize = 4 << 20;

/// Sets glibc's mmap threshold to [`MMAP_THRESHOLD`] (fixed, which also stops glibc from raising
/// it). Process-wide: called once, as the server starts.
pub fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of glibc's allocator; any value is valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// Returns free heap pages to the OS.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
