//! The broadcast workload: a data message from a member of a room goes to every member.
//!
//! [`Hub`] holds the rooms. A connection joins one when it opens (the room its path names, or
//! the one of its connection index) and leaves when its workload is dropped. A broadcast reads
//! the room's member list under a read lock and hands each member the message:
//!
//! - zero-alloc engine: the frame header is encoded once, and header and payload are copied into
//!   each member's [`Mailbox`], a fixed ring allocated when it joined: no allocation per delivery;
//! - tungstenite engine: as a typical tokio application does, the message is built once as a
//!   tungstenite `Message` (one allocation) and a clone of it (a reference count) is offered to
//!   each member's bounded `mpsc` channel with `try_send`.
//!
//! Slow members: a member whose queue is full ([`super::QUEUE_BYTES`] of frames, or [`CHANNEL_LEN`]
//! messages) loses that delivery, is removed from the room and its connection is closed with 1008;
//! both are counted ([`FanoutCounts`]). The sender never waits for a member.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use wsbench_core::codec::frame::Opcode;
use wsbench_core::codec::{write, MAX_HEADER_LEN};
use wsbench_core::plan::{Engine, Fanout, Workload};
use wsbench_core::result::ServerFanout;

use super::mailbox::{Mailbox, Queued};
use super::DataKind;

/// Messages a tungstenite member may have queued and unsent before it counts as slow.
pub const CHANNEL_LEN: usize = 256;

/// Fan-out counters, server-wide (see [`ServerFanout`]).
#[derive(Debug, Default)]
pub struct FanoutCounts {
    messages: AtomicU64,
    deliveries: AtomicU64,
    slow_closed: AtomicU64,
    dropped: AtomicU64,
}

impl FanoutCounts {
    pub fn snapshot(&self) -> ServerFanout {
        ServerFanout {
            messages: self.messages.load(Relaxed),
            deliveries: self.deliveries.load(Relaxed),
            slow_receivers_closed: self.slow_closed.load(Relaxed),
            deliveries_dropped: self.dropped.load(Relaxed),
        }
    }

    pub(crate) fn message(&self) {
        self.messages.fetch_add(1, Relaxed);
    }

    pub(crate) fn delivered(&self, n: u64) {
        self.deliveries.fetch_add(n, Relaxed);
    }

    pub(crate) fn dropped(&self, newly_slow: bool) {
        self.dropped.fetch_add(1, Relaxed);
        if newly_slow {
            self.slow_closed.fetch_add(1, Relaxed);
        }
    }
}

/// Where a receiver's deliveries go: what its engine reads from.
#[derive(Debug)]
pub enum Inbox {
    Mailbox(Arc<Mailbox>),
    /// The deliveries, and a signal that the receiver was found slow: it may be stuck waiting
    /// for its socket, where the channel's end would not reach it.
    Channel(mpsc::Receiver<Message>, Arc<Notify>),
}

impl Inbox {
    /// A new inbox and the handle senders deliver through, for `engine`.
    pub fn new(engine: Engine) -> (Self, Outlet) {
        match engine {
            Engine::ZeroAlloc => {
                let m = Arc::new(Mailbox::new());
                (Self::Mailbox(Arc::clone(&m)), Outlet::Mailbox(m))
            }
            Engine::Tungstenite => {
                let (tx, rx) = mpsc::channel(CHANNEL_LEN);
                let slow = Arc::new(Notify::new());
                (Self::Channel(rx, Arc::clone(&slow)), Outlet::Channel(tx, slow))
            }
        }
    }
}

/// The sending side of an [`Inbox`].
#[derive(Debug, Clone)]
pub enum Outlet {
    Mailbox(Arc<Mailbox>),
    Channel(mpsc::Sender<Message>, Arc<Notify>),
}

/// One message ready to be delivered to many: encoded once.
pub struct Outgoing<'a> {
    head: [u8; MAX_HEADER_LEN],
    head_len: usize,
    payload: &'a [u8],
    /// Built on first use by a channel member.
    message: Option<Message>,
    kind: DataKind,
}

impl<'a> Outgoing<'a> {
    pub fn new(kind: DataKind, payload: &'a [u8]) -> Self {
        let opcode = match kind {
            DataKind::Text => Opcode::Text,
            DataKind::Binary => Opcode::Binary,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = write::header(&mut head, true, opcode, payload.len(), None);
        Self {
            head,
            head_len,
            payload,
            message: None,
            kind,
        }
    }

    fn message(&mut self) -> Message {
        let (kind, payload) = (self.kind, self.payload);
        self.message
            .get_or_insert_with(|| {
                let bytes = Bytes::copy_from_slice(payload);
                match kind {
                    DataKind::Binary => Message::Binary(bytes),
                    // Engines hand workloads validated UTF-8 for text frames.
                    DataKind::Text => Message::Text(
                        Utf8Bytes::try_from(bytes).expect("text frames are valid UTF-8"),
                    ),
                }
            })
            .clone()
    }
}

impl Outlet {
    /// Offers `msg`; `Err(newly_slow)` when it was dropped because the receiver's queue is full.
    pub fn offer(&self, msg: &mut Outgoing<'_>) -> Result<(), bool> {
        match self {
            Self::Mailbox(m) => match m.push_frame(&msg.head[..msg.head_len], msg.payload) {
                Queued::Yes => Ok(()),
                Queued::Full => Err(true),
                Queued::Slow => Err(false),
            },
            Self::Channel(tx, slow) => match tx.try_send(msg.message()) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slow.notify_one();
                    Err(true)
                }
                // The receiver's connection is ending already.
                Err(mpsc::error::TrySendError::Closed(_)) => Err(false),
            },
        }
    }
}

struct Member {
    id: u64,
    outlet: Outlet,
    slow: AtomicBool,
}

/// The rooms of a broadcast server, and the fan-out counters of every workload.
pub struct Hub {
    workload: Workload,
    engine: Engine,
    fanout: Fanout,
    rooms: Vec<RwLock<Vec<Member>>>,
    next_index: AtomicU64,
    pub counts: FanoutCounts,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("workload", &self.workload)
            .field("rooms", &self.rooms.len())
            .finish()
    }
}

impl Hub {
    pub fn new(workload: Workload, engine: Engine, fanout: Fanout) -> Self {
        let rooms = if workload == Workload::Broadcast {
            fanout.rooms as usize
        } else {
            0
        };
        Self {
            workload,
            engine,
            fanout,
            rooms: (0..rooms).map(|_| RwLock::new(Vec::new())).collect(),
            next_index: AtomicU64::new(0),
            counts: FanoutCounts::default(),
        }
    }

    pub fn workload(&self) -> Workload {
        self.workload
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn fanout(&self) -> Fanout {
        self.fanout
    }

    /// Whether a path's room exists (`None`: the path names no room).
    pub fn has_room(&self, room: u32) -> bool {
        (room as usize) < self.rooms.len()
    }

    /// Joins the room `room` names, or the next connection index's room.
    pub fn join(self: &Arc<Self>, room: Option<u32>) -> Subscription {
        let id = self.next_index.fetch_add(1, Relaxed);
        let n = self.rooms.len().max(1) as u64;
        let room = match room {
            Some(r) if (r as usize) < self.rooms.len() => r as usize,
            _ => (id % n) as usize,
        };
        let (inbox, outlet) = Inbox::new(self.engine);
        write_lock(&self.rooms[room]).push(Member {
            id,
            outlet,
            slow: AtomicBool::new(false),
        });
        Subscription {
            hub: Arc::clone(self),
            room,
            id,
            inbox,
        }
    }

    /// Delivers one message from member `from` to its room.
    fn broadcast(&self, room: usize, from: u64, kind: DataKind, payload: &[u8]) {
        self.counts.message();
        let mut out = Outgoing::new(kind, payload);
        let mut delivered = 0;
        let mut any_slow = false;
        {
            let members = read_lock(&self.rooms[room]);
            for m in members.iter() {
                if m.id == from && !self.fanout.echo_to_sender {
                    continue;
                }
                match m.outlet.offer(&mut out) {
                    Ok(()) => delivered += 1,
                    Err(newly_slow) => {
                        let newly_slow = newly_slow && !m.slow.swap(true, Relaxed);
                        any_slow |= newly_slow;
                        self.counts.dropped(newly_slow);
                    }
                }
            }
        }
        self.counts.delivered(delivered);
        if any_slow {
            // Dropping a slow member's sender ends its channel: its connection closes (1008).
            write_lock(&self.rooms[room]).retain(|m| !m.slow.load(Relaxed));
        }
    }

    fn leave(&self, room: usize, id: u64) {
        write_lock(&self.rooms[room]).retain(|m| m.id != id);
    }
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// One connection's membership of a room: the broadcast workload of that connection. Leaves
/// the room when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    room: usize,
    id: u64,
    pub inbox: Inbox,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("room", &self.room)
            .field("id", &self.id)
            .finish()
    }
}

impl Subscription {
    pub fn on_message(&mut self, kind: DataKind, payload: &[u8]) {
        self.hub.broadcast(self.room, self.id, kind, payload);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.leave(self.room, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Waker};

    fn drained(inbox: &Inbox) -> Vec<u8> {
        let Inbox::Mailbox(m) = inbox else { panic!() };
        let mut out = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        let _ = m.poll_flush(&mut cx, |_, b| {
            out.extend_from_slice(b);
            Ok(b.len())
        });
        out
    }

    fn hub(echo_to_sender: bool) -> Arc<Hub> {
        let fanout = Fanout { rooms: 2, echo_to_sender, ..Fanout::default() };
        Arc::new(Hub::new(Workload::Broadcast, Engine::ZeroAlloc, fanout))
    }

    #[test]
    fn a_room_gets_every_message_once_and_other_rooms_nothing() {
        let hub = hub(false);
        let mut a = hub.join(Some(0));
        let b = hub.join(Some(0));
        let c = hub.join(Some(1));
        a.on_message(DataKind::Binary, b"hello");
        assert_eq!(drained(&b.inbox), b"\x82\x05hello");
        assert!(drained(&a.inbox).is_empty(), "no echo to the sender");
        assert!(drained(&c.inbox).is_empty());
        let s = hub.counts.snapshot();
        assert_eq!((s.messages, s.deliveries, s.deliveries_dropped), (1, 1, 0));
        drop(b);
        a.on_message(DataKind::Text, b"x");
        assert_eq!(hub.counts.snapshot().deliveries, 1, "a member that left gets nothing");
    }

    #[test]
    fn echo_to_sender_includes_the_sender_and_indexes_pick_rooms() {
        let hub = hub(true);
        let mut a = hub.join(None);
        let b = hub.join(None);
        a.on_message(DataKind::Text, b"hi");
        assert_eq!(drained(&a.inbox), b"\x81\x02hi");
        assert!(drained(&b.inbox).is_empty(), "index 1 is in the other room");
    }

    #[test]
    fn a_full_member_is_dropped_and_counted_once_while_others_go_on() {
        let hub = hub(false);
        let mut a = hub.join(Some(0));
        let stalled = hub.join(Some(0));
        let b = hub.join(Some(0));
        let payload = vec![7u8; 1000];
        let fits = super::super::QUEUE_BYTES / (payload.len() + 4);
        for i in 0..fits + 10 {
            a.on_message(DataKind::Binary, &payload);
            // b keeps reading; the stalled member never does.
            assert_eq!(drained(&b.inbox).len(), payload.len() + 4, "{i}");
        }
        let s = hub.counts.snapshot();
        assert_eq!(s.slow_receivers_closed, 1);
        assert_eq!(s.deliveries_dropped, 1, "removed from the room after its first loss");
        let Inbox::Mailbox(m) = &stalled.inbox else { panic!() };
        assert!(m.is_slow());
    }
}
