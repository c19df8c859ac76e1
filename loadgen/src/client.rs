//! The client engines behind one interface: the fleet opens and runs connections through
//! [`connect`] and [`Client::run`] without knowing which engine carries them. A connection that
//! cannot be opened fails with a [`ConnectError`] naming its cause the same way for both.

use std::future::Future;
use std::pin::Pin;

use wsbench_core::plan::Engine;

use crate::connection::{self, ConnEnd, ConnShared, WsStream};
use crate::transport::Target;
use crate::zero::{self, ZeroStream};

/// An open connection of either engine, handshake done.
pub enum Client {
    /// Boxed: tungstenite's stream is several times larger than the raw one, and a connection
    /// is opened once.
    Tungstenite(Box<WsStream>),
    ZeroAlloc(ZeroStream),
}

/// What opening one connection took, in nanoseconds, and what the server chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectTimes {
    /// `connect()` called → TCP connection established.
    pub connect_ns: u64,
    /// TLS handshake, when the URL is `wss://`.
    pub tls_ns: Option<u64>,
    /// WebSocket handshake: request written → `101` parsed (tungstenite: request built →
    /// `101` parsed, its write included).
    pub handshake_ns: u64,
    /// The subprotocol the server chose (`Sec-WebSocket-Protocol` of its response).
    pub subprotocol: Option<String>,
    /// permessage-deflate as the server agreed to it (zero-alloc engine, `--deflate`).
    pub deflate: Option<wsbench_core::codec::deflate::Agreement>,
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ConnectError {
    /// Short and countable: `refused`, `reset`, `timeout`, `closed`, `HTTP status 503`,
    /// `handshake error: ...`, `I/O error: ...`.
    pub cause: String,
    /// The whole story, for the log.
    pub detail: String,
}

impl ConnectError {
    pub fn new(cause: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { cause: cause.into(), detail: detail.into() }
    }

    /// A socket error during connect or handshake, `detail` saying what was being done.
    pub fn io(e: &std::io::Error, detail: String) -> Self {
        Self::new(io_cause(e), detail)
    }
}

/// The countable cause of a failed socket operation.
pub fn io_cause(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "refused".into(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => "reset".into(),
        ErrorKind::TimedOut => "timeout".into(),
        ErrorKind::UnexpectedEof => "closed".into(),
        _ => match e.raw_os_error() {
            Some(code) => format!("I/O error: {}", std::io::Error::from_raw_os_error(code)),
            None => format!("I/O error: {e}"),
        },
    }
}

/// Opens one connection with `engine`. `open_loop` tunes tungstenite's write buffering (see
/// [`connection::connect`]); `batch` sizes the zero-alloc engine's buffers (see
/// [`zero::expected_batch`]).
pub async fn connect(engine: Engine, target: &Target, size: u64, open_loop: bool, batch: usize) -> Result<(Client, ConnectTimes), ConnectError> {
    match engine {
        Engine::Tungstenite => connection::connect(target, size, open_loop).await.map(|(ws, t)| (Client::Tungstenite(Box::new(ws)), t)),
        Engine::ZeroAlloc => zero::connect(target, size, batch).await.map(|(s, t)| (Client::ZeroAlloc(s), t)),
    }
}

impl Client {
    /// Runs connection number `index` of the process's open connections, the `slot`-th of its
    /// worker, to its end (see [`connection::run`]).
    ///
    /// Each engine's loop is boxed at its own size, once per connection: inline, every
    /// connection's task would be as large as the larger engine's loop, and with 10,000
    /// connections at a low rate the tasks are most of the load generator's memory.
    pub fn run(self, index: u32, slot: usize, shared: &ConnShared) -> Pin<Box<dyn Future<Output = ConnEnd> + '_>> {
        match self {
            Self::Tungstenite(ws) => Box::pin(connection::run(*ws, index, slot, shared)),
            Self::ZeroAlloc(s) => Box::pin(zero::run(s, index, slot, shared)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn socket_errors_have_countable_causes() {
        assert_eq!(io_cause(&Error::from(ErrorKind::ConnectionRefused)), "refused");
        assert_eq!(io_cause(&Error::from(ErrorKind::ConnectionReset)), "reset");
        assert_eq!(io_cause(&Error::from(ErrorKind::TimedOut)), "timeout");
        assert_eq!(io_cause(&Error::from_raw_os_error(libc::EMFILE)), "I/O error: Too many open files (os error 24)");
    }
}
