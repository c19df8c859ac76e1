//! Giving freed memory back to the OS.
//!
//! glibc keeps freed heap memory for reuse: after a flood of connections closes, the pages
//! their buffers and tasks used stay resident, and a second flood on another thread's arena
//! adds to them. This module runs one thread that, at most once per [`PERIOD`], asks glibc to
//! return free pages (`malloc_trim(0)`, which also releases whole free pages inside the heap)
//! when sockets have closed since it last did. It never trims while nothing closes, so a
//! steady benchmark is not disturbed; the allocator itself (and its counting) is unchanged.

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
                let mut seen = metrics.sockets_closed();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(PERIOD) {
                    let closed = metrics.sockets_closed();
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

/// Returns free heap pages to the OS.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
