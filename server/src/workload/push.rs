//! The push workload: the server sends to every connection on an open-loop schedule.
//!
//! Each connection gets a pusher task (spawned once, when it opens; aborted when it ends) that
//! sends message `k` at `start + k / --push-rate`, with that intended time and the actual send
//! time in the wsbench header, so the client measures one-way latency from the intended time
//! (coordinated omission corrected) and finds gaps in the sequence numbers. After a stall (an
//! emulated pause: the pusher stops at the pause safepoint like every runtime thread) the
//! backlog is sent at once, late, never skipped. Messages go through the connection's inbox,
//! the same one broadcast uses, so a receiver that does not read is closed (1008) the same way.
//! The tokio timer wakes up to a millisecond late; the lateness is in the latency, as it would
//! be for any server that uses it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;
use wsbench_core::clock::now_ns;
use wsbench_core::header::{fill_payload, MessageHeader};

use super::broadcast::{Hub, Inbox, Outgoing, Outlet};
use super::DataKind;
use crate::pause::PauseGate;

/// One connection's pushed stream; the pusher stops when this is dropped.
#[derive(Debug)]
pub struct PushStream {
    pub inbox: Inbox,
    task: JoinHandle<()>,
}

impl PushStream {
    /// Starts pushing to a new connection. Must be called within the server's runtime.
    pub fn start(hub: &Arc<Hub>, pause: &Arc<PauseGate>) -> Self {
        let (inbox, outlet) = Inbox::new(hub.engine());
        let task = tokio::spawn(push(Arc::clone(hub), Arc::clone(pause), outlet));
        Self { inbox, task }
    }
}

impl Drop for PushStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn push(hub: Arc<Hub>, pause: Arc<PauseGate>, outlet: Outlet) {
    let fanout = hub.fanout();
    let period_ns = (1e9 / fanout.push_rate).max(1.0);
    // One buffer for the task's life: each message is stamped into it in place.
    let mut buf = vec![0u8; fanout.push_size as usize];
    let start_ns = now_ns();
    let start = Instant::now();
    for seq in 0u64.. {
        let offset_ns = (seq as f64 * period_ns) as u64;
        sleep_until(start + Duration::from_nanos(offset_ns)).await;
        pause.safepoint();
        let header = MessageHeader {
            seq,
            intended_ns: start_ns + offset_ns,
            sent_ns: now_ns(),
            warmup: false,
        };
        header.encode(&mut buf);
        fill_payload(&mut buf, seq);
        let sent = match &outlet {
            Outlet::Mailbox(_) => outlet.offer(&mut Outgoing::new(DataKind::Binary, &buf)),
            // As a typical application: a fresh message per send.
            Outlet::Channel(tx, slow) => match tx.try_send(Message::Binary(Bytes::copy_from_slice(&buf))) {
                Ok(()) => Ok(()),
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    slow.notify_one();
                    Err(true)
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
            },
        };
        hub.counts.message();
        match sent {
            Ok(()) => hub.counts.delivered(1),
            Err(newly_slow) => {
                hub.counts.dropped(newly_slow);
                // The receiver is being closed; nothing more to push.
                return;
            }
        }
    }
}
