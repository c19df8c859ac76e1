//! Engines: the WebSocket implementations under test, behind one seam.
//!
//! The HTTP layer answers the upgrade itself and hands every engine the same thing: an
//! [`Upgraded`] socket plus whatever bytes followed the request head. From there the engine owns
//! the connection: framing, running the workload, latency recording, counting, protocol errors
//! and the closing handshake, including going away on shutdown. Only `tungstenite` exists now;
//! a zero-allocation engine on wsbench-core's frame codec is meant to slot in beside it as
//! another module and another arm of [`serve`].

mod tungstenite;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use wsbench_core::plan::{Engine, Workload};

use crate::metrics::Metrics;
use crate::pause::PauseGate;
use crate::recorder::Recorder;
use crate::shutdown::Shutdown;

/// How long a closing connection waits for the peer's close frame (and for its own close frame to
/// go out) before dropping the socket.
pub const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// A socket whose WebSocket handshake has been answered.
#[derive(Debug)]
pub struct Upgraded {
    pub stream: TcpStream,
    /// Bytes the client sent after its request head: the start of the WebSocket stream.
    pub leftover: Vec<u8>,
}

/// What every connection of one server shares.
#[derive(Debug)]
pub struct ConnectionContext {
    pub engine: Engine,
    pub workload: Workload,
    /// Largest message and largest frame accepted.
    pub max_message_size: usize,
    pub metrics: Arc<Metrics>,
    pub pause: Arc<PauseGate>,
    pub recorder: Arc<Recorder>,
}

/// Runs one WebSocket connection to its end with the plan's engine.
pub async fn serve(upgraded: Upgraded, ctx: &ConnectionContext, shutdown: Shutdown) {
    let _open = ctx.metrics.open_connection();
    match ctx.engine {
        Engine::Tungstenite => tungstenite::serve(upgraded, ctx, shutdown).await,
    }
}
