//! Workloads: what the server does with each received data message.
//!
//! A workload sees the message's frame type and payload as borrowed bytes and answers with a
//! [`Reply`]; the engine that received the message carries the reply out. Keeping the decision
//! on plain bytes lets every engine (the allocating tungstenite one now, a zero-allocation one
//! later) run every workload. A workload must not allocate per message. Latency recording and
//! counting are done by the engine for every workload alike, not here.

mod echo;

pub use echo::Echo;

use wsbench_core::plan;

/// Frame type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    Text,
    Binary,
}

/// What to send back for one received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The received message itself: same frame type, same payload.
    Echo,
}

/// A workload's behaviour on one connection (one value per connection, so it may keep state).
pub trait Workload: Send {
    fn on_message(&mut self, kind: DataKind, payload: &[u8]) -> Reply;
}

/// The workload a plan names, ready for one connection.
#[derive(Debug)]
pub enum AnyWorkload {
    Echo(Echo),
}

impl AnyWorkload {
    pub fn new(kind: plan::Workload) -> Self {
        match kind {
            plan::Workload::Echo => Self::Echo(Echo),
        }
    }
}

impl Workload for AnyWorkload {
    #[inline]
    fn on_message(&mut self, kind: DataKind, payload: &[u8]) -> Reply {
        match self {
            Self::Echo(w) => w.on_message(kind, payload),
        }
    }
}
