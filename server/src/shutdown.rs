//! Graceful shutdown: one trigger, seen by every connection task.
//!
//! The server holds a [`ShutdownTrigger`]; each connection task holds a [`Shutdown`]. Tasks ask
//! [`Shutdown::is_requested`] once per message (one atomic load, no lock, so busy connections
//! notice promptly) and await [`Shutdown::wait`] while idle. What a task does on shutdown
//! (close code 1001, waiting for the reply) is the engine's business, not this module's.

use tokio::sync::watch;

/// The sending side, held by the server.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Default for ShutdownTrigger {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownTrigger {
    pub fn new() -> Self {
        Self {
            tx: watch::Sender::new(false),
        }
    }

    /// A listener for one task.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown::new(self.tx.subscribe())
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Tells every task, present and future, to shut down.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

/// One task's view of the shutdown.
#[derive(Debug, Clone)]
pub struct Shutdown {
    requested: bool,
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    fn new(rx: watch::Receiver<bool>) -> Self {
        // A receiver made after the trigger sees no change, only the value.
        let requested = *rx.borrow();
        Self { requested, rx }
    }

    /// True once shutdown was triggered (or the server is gone).
    #[inline]
    pub fn is_requested(&mut self) -> bool {
        if !self.requested {
            // The value only ever goes from false to true, so any change means shutdown; an
            // error means the trigger was dropped, which means the server is going away.
            self.requested = !matches!(self.rx.has_changed(), Ok(false));
        }
        self.requested
    }

    /// Waits until shutdown is triggered. Cancel-safe.
    pub async fn wait(&mut self) {
        if self.is_requested() {
            return;
        }
        // Err: the trigger was dropped, which also means shutdown.
        let _ = self.rx.wait_for(|&v| v).await;
        self.requested = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_listener_sees_the_trigger() {
        let trigger = ShutdownTrigger::new();
        let mut early = trigger.subscribe();
        assert!(!early.is_requested());
        let waiter = tokio::spawn({
            let mut s = trigger.subscribe();
            async move { s.wait().await }
        });
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(early.is_requested());
        let mut late = trigger.subscribe();
        assert!(late.is_requested());
        tokio::time::timeout(Duration::from_secs(5), late.wait())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_dropped_trigger_means_shutdown() {
        let trigger = ShutdownTrigger::new();
        let mut s = trigger.subscribe();
        drop(trigger);
        assert!(s.is_requested());
    }
}
