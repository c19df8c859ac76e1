//! Engines: the WebSocket implementations under test, behind one seam.
//!
//! The HTTP layer answers the upgrade itself and hands every engine the same thing: an
//! [`Upgraded`] socket plus whatever bytes followed the request head. From there the engine owns
//! the connection: framing, running the workload, latency recording, counting, protocol errors
//! and the closing handshake, including going away on shutdown. `tungstenite` is the reference;
//! `zero_alloc` runs wsbench-core's frame codec on the raw socket with per-thread buffers. A new
//! engine is another module and another arm of [`serve`].

mod tungstenite;
mod zero_alloc;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;

use tokio::sync::Notify;
use wsbench_core::codec::deflate::{Agreement, DeflateConfig};
use wsbench_core::plan::{Engine, Handler, Workload};

use crate::gate::Gate;
use crate::limits::{Budget, Limits};
use crate::metrics::{Metrics, Snapshot};
use crate::park::{IdleConnection, Lot};
use crate::pause::PauseGate;
use crate::recorder::Recorder;
use crate::shutdown::Shutdown;
use crate::transport::{Stream, Tls};
use crate::workload::{AnyWorkload, Hub};

/// How long a connection closed by the server's shutdown waits for the peer's close frame (and
/// for its own close frame to go out) before dropping the socket. Other closes wait
/// `--close-timeout`.
pub const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// A socket whose WebSocket handshake has been answered.
#[derive(Debug)]
pub struct Upgraded {
    pub stream: Stream,
    /// Bytes the client sent after its request head: the start of the WebSocket stream.
    pub leftover: Vec<u8>,
    /// The broadcast room the request's path named (`/room/<k>`).
    pub room: Option<u32>,
    /// permessage-deflate as negotiated, if it was.
    pub deflate: Option<Agreement>,
}

/// What every connection of one server shares.
#[derive(Debug)]
pub struct ConnectionContext {
    pub engine: Engine,
    pub workload: Workload,
    /// How the workload treats each message: without allocating, or as ordinary application code.
    pub handler: Handler,
    /// Largest message and largest frame accepted.
    pub max_message_size: usize,
    /// Every other bound: timeouts, memory, output, connections.
    pub limits: Limits,
    /// Serve TLS: the handshake every accepted socket goes through first.
    pub tls: Option<Tls>,
    /// Subprotocols spoken, and whether an upgrade offering none of them is refused.
    pub subprotocols: Vec<String>,
    pub require_subprotocol: bool,
    /// Who may upgrade: origins, tokens, per-peer connection rate.
    pub gate: Gate,
    /// `--deflate`: what permessage-deflate offers are accepted with (zero-alloc engine only).
    pub deflate: Option<DeflateConfig>,
    /// The server-wide allowance for partial-message memory (`limits.max_buffered`).
    pub budget: Budget,
    pub metrics: Arc<Metrics>,
    pub pause: Arc<PauseGate>,
    pub recorder: Arc<Recorder>,
    /// Rooms and fan-out counters of the broadcast and push workloads.
    pub hub: Arc<Hub>,
    /// Notified once, right after the shutdown trigger fires: a cheaper way than
    /// [`Shutdown::wait`] for an idle connection to be woken for it (a 64-byte future in every
    /// connection's task instead of the watch channel's 168 bytes). Whether shutdown has been
    /// requested is still [`Shutdown::is_requested`]'s to say.
    pub go_away: Notify,
    /// Where pending handshakes and quiet connections wait without a task (see `park`).
    pub lot: Lot,
}

#[cfg(test)]
impl ConnectionContext {
    /// An echo server's context with every default, for the size tests of connection futures.
    pub fn for_test() -> Self {
        Self {
            engine: Engine::ZeroAlloc,
            workload: Workload::Echo,
            handler: Handler::ZeroAlloc,
            max_message_size: 1 << 20,
            limits: Limits::default(),
            tls: None,
            subprotocols: Vec::new(),
            require_subprotocol: false,
            gate: Gate::default(),
            deflate: None,
            budget: Budget::new(1 << 30),
            metrics: Arc::new(Metrics::default()),
            pause: Arc::new(PauseGate::new()),
            recorder: Arc::new(Recorder::new()),
            hub: Arc::new(Hub::new(Workload::Echo, Engine::ZeroAlloc, wsbench_core::plan::Fanout::default())),
            go_away: Notify::new(),
            lot: Lot::new().expect("an epoll set"),
        }
    }
}

impl ConnectionContext {
    /// The workload of a connection that just opened.
    pub fn open_workload(&self, room: Option<u32>) -> AnyWorkload {
        AnyWorkload::open(&self.hub, self.handler, &self.pause, room)
    }

    /// Every counter, with the partial-message memory in use now.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = self.metrics.snapshot();
        s.buffered_bytes = self.budget.used() as u64;
        s.parked = self.lot.len() as u64;
        s
    }
}

/// Runs one WebSocket connection with the plan's engine until it ends (`None`) or, on the
/// zero-alloc engine, is quiet long enough to be parked (`Some`: all it keeps while parked).
///
/// Not an `async fn`, so that the socket and shutdown handle move into the engine's future
/// once instead of also staying behind as this function's arguments: that future is the bulk
/// of an idle connection's memory.
pub fn serve<'a>(
    upgraded: Upgraded,
    ctx: &'a ConnectionContext,
    shutdown: Shutdown,
) -> impl Future<Output = Option<IdleConnection>> + Send + 'a {
    let open = ctx.metrics.open_connection();
    match ctx.engine {
        // Boxed: its future is ~5 KiB, and unboxed every connection's task would be that big
        // whichever engine it runs, five times the zero-alloc engine's budget for an idle
        // connection. One allocation per connection, never per message.
        Engine::Tungstenite => Either::Left(Box::pin(async move {
            let _open = open;
            tungstenite::serve(upgraded, ctx, shutdown).await;
            None
        })),
        Engine::ZeroAlloc => Either::Right(zero_alloc::serve(upgraded, ctx, shutdown, open)),
    }
}

/// Serves a parked zero-alloc connection again (its socket is readable, or its keep-alive is
/// due), until it ends or is parked anew.
pub fn resume<'a>(
    idle: IdleConnection,
    ctx: &'a ConnectionContext,
    shutdown: Shutdown,
) -> impl Future<Output = Option<IdleConnection>> + Send + 'a {
    zero_alloc::resume(idle, ctx, shutdown)
}
