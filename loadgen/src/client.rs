//! The client engines behind one interface: the fleet opens and runs connections through
//! [`connect`] and [`Client::run`] without knowing which engine carries them.

use wsbench_core::plan::Engine;

use crate::connection::{self, ConnEnd, ConnShared, WsStream};
use crate::zero::{self, ZeroStream};

/// An open connection of either engine, handshake done.
pub enum Client {
    /// Boxed: tungstenite's stream is several times larger than the raw one, and a connection
    /// is opened once.
    Tungstenite(Box<WsStream>),
    ZeroAlloc(ZeroStream),
}

/// Opens one connection with `engine`. `open_loop` tunes tungstenite's write buffering (see
/// [`connection::connect`]); the zero-alloc engine batches the same way in both modes.
pub async fn connect(engine: Engine, addr: &str, url: &str, size: u64, open_loop: bool) -> Result<Client, String> {
    match engine {
        Engine::Tungstenite => connection::connect(addr, url, size, open_loop).await.map(|ws| Client::Tungstenite(Box::new(ws))),
        Engine::ZeroAlloc => zero::connect(addr, url, size).await.map(Client::ZeroAlloc),
    }
}

impl Client {
    /// Runs connection number `index` to its end (see [`connection::run`]).
    pub async fn run(self, index: u32, shared: &ConnShared) -> ConnEnd {
        match self {
            Self::Tungstenite(ws) => connection::run(*ws, index, shared).await,
            Self::ZeroAlloc(s) => zero::run(s, index, shared).await,
        }
    }

    /// Closes a connection that never ran (the run was stopped first): a close frame without a
    /// code, sent without waiting for the reply. The caller bounds the time.
    pub async fn close_unused(self) {
        match self {
            Self::Tungstenite(mut ws) => {
                let _ = ws.close(None).await;
            }
            Self::ZeroAlloc(s) => s.close_unused().await,
        }
    }
}
