//! Workloads: what the server does with each received data message.
//!
//! A workload sees the message's frame type and payload as borrowed bytes and answers with a
//! [`Reply`]; the engine that received the message carries the reply out. Keeping the decision
//! on plain bytes lets every engine (tungstenite, and any engine on wsbench-core's codec) run
//! every workload. Latency recording and counting are done by the engine for every workload
//! alike, not here.
//!
//! Each workload comes in the handler styles of [`plan::Handler`], one file per handler:
//! `echo` answers from the received bytes and never allocates (`--handler zero-alloc`);
//! `json_echo` decodes every message into owned values and round-trips it through serde_json,
//! as an ordinary application handler does (`--handler alloc`), to show what allocating costs.
//! Both replies are byte-identical to the message, so the load generator checks them alike.
//!
//! The one-way workloads send nothing back to the sender: `broadcast` delivers each message to
//! the sender's room, `push` sends on the server's own schedule, `sink` only counts (the engine
//! records every message's one-way latency as for echo). What broadcast and push deliver goes
//! into the connection's [`Inbox`], which its engine writes out alongside its own frames.

mod broadcast;
mod echo;
mod json_echo;
mod mailbox;
mod push;

pub use broadcast::{Hub, Inbox, Subscription};
pub use echo::Echo;
pub use json_echo::JsonEcho;
pub use mailbox::{Mailbox, QUEUE_BYTES};
pub use push::PushStream;

use std::sync::Arc;

use wsbench_core::plan;

use crate::pause::PauseGate;

/// Frame type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    Text,
    Binary,
}

/// What to send back for one received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The received message itself: same frame type, same payload. Engines send what they
    /// already hold, so this reply costs no allocation.
    Echo,
    /// A text message the workload built (valid UTF-8 by construction).
    Text(String),
    /// A binary message the workload built.
    Binary(Vec<u8>),
    /// Nothing goes back to the sender (broadcast, push, sink).
    None,
}

impl Reply {
    /// The reply's frame type, for a message of type `received` (an engine working on bytes
    /// uses this and [`Reply::payload`] instead of matching every variant).
    #[inline]
    pub fn kind(&self, received: DataKind) -> DataKind {
        match self {
            Self::Echo | Self::None => received,
            Self::Text(_) => DataKind::Text,
            Self::Binary(_) => DataKind::Binary,
        }
    }

    /// The reply's payload, for a message whose payload was `received`.
    #[inline]
    pub fn payload<'a>(&'a self, received: &'a [u8]) -> &'a [u8] {
        match self {
            Self::Echo => received,
            Self::Text(t) => t.as_bytes(),
            Self::Binary(b) => b,
            Self::None => &[],
        }
    }
}

/// A workload's behaviour on one connection (one value per connection, so it may keep state).
pub trait Workload: Send {
    fn on_message(&mut self, kind: DataKind, payload: &[u8]) -> Reply;
}

/// The workload and handler a plan names, ready for one connection.
#[derive(Debug)]
pub enum AnyWorkload {
    Echo(Echo),
    JsonEcho(JsonEcho),
    // Boxed: a connection's state is counted in bytes, and echo needs none of this.
    Broadcast(Box<Subscription>),
    Push(Box<PushStream>),
    Sink,
}

impl AnyWorkload {
    /// The echo workloads (the others need [`AnyWorkload::open`]).
    pub fn new(kind: plan::Workload, handler: plan::Handler) -> Self {
        match (kind, handler) {
            (plan::Workload::Echo, plan::Handler::ZeroAlloc) => Self::Echo(Echo),
            (plan::Workload::Echo, plan::Handler::Alloc) => Self::JsonEcho(JsonEcho),
            (plan::Workload::Sink, _) => Self::Sink,
            (plan::Workload::Broadcast | plan::Workload::Push, _) => {
                unreachable!("broadcast and push need the hub: AnyWorkload::open")
            }
        }
    }

    /// The workload of a connection that just opened (`room`: the room its path named).
    /// Broadcast joins a room; push starts the connection's pusher (within the runtime).
    pub fn open(hub: &Arc<Hub>, handler: plan::Handler, pause: &Arc<PauseGate>, room: Option<u32>) -> Self {
        match hub.workload() {
            plan::Workload::Broadcast => Self::Broadcast(Box::new(hub.join(room))),
            plan::Workload::Push => Self::Push(Box::new(PushStream::start(hub, pause))),
            other => Self::new(other, handler),
        }
    }

    /// Where deliveries to this connection wait, for the workloads that have them.
    pub fn inbox(&mut self) -> Option<&mut Inbox> {
        match self {
            Self::Broadcast(s) => Some(&mut s.inbox),
            Self::Push(p) => Some(&mut p.inbox),
            _ => None,
        }
    }

    /// The zero-alloc engine's view of [`AnyWorkload::inbox`].
    #[inline]
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            Self::Broadcast(s) => match &s.inbox {
                Inbox::Mailbox(m) => Some(&**m),
                Inbox::Channel(..) => None,
            },
            Self::Push(p) => match &p.inbox {
                Inbox::Mailbox(m) => Some(&**m),
                Inbox::Channel(..) => None,
            },
            _ => None,
        }
    }
}

impl Workload for AnyWorkload {
    #[inline]
    fn on_message(&mut self, kind: DataKind, payload: &[u8]) -> Reply {
        match self {
            Self::Echo(w) => w.on_message(kind, payload),
            Self::JsonEcho(w) => w.on_message(kind, payload),
            Self::Broadcast(s) => {
                s.on_message(kind, payload);
                Reply::None
            }
            // Push clients send nothing the server answers; sink answers nothing.
            Self::Push(_) | Self::Sink => Reply::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_name_their_bytes_and_frame_type() {
        let received = b"abc";
        assert_eq!(Reply::Echo.payload(received), received);
        assert_eq!(Reply::Echo.kind(DataKind::Binary), DataKind::Binary);
        let t = Reply::Text("xyz".into());
        assert_eq!(
            (t.payload(received), t.kind(DataKind::Binary)),
            (&b"xyz"[..], DataKind::Text)
        );
        let b = Reply::Binary(vec![1, 2]);
        assert_eq!(
            (b.payload(received), b.kind(DataKind::Text)),
            (&[1u8, 2][..], DataKind::Binary)
        );
    }

    #[test]
    fn the_plan_picks_the_handler() {
        use wsbench_core::plan::{Handler, Workload as W};
        assert!(matches!(
            AnyWorkload::new(W::Echo, Handler::ZeroAlloc),
            AnyWorkload::Echo(_)
        ));
        assert!(matches!(
            AnyWorkload::new(W::Echo, Handler::Alloc),
            AnyWorkload::JsonEcho(_)
        ));
    }
}
