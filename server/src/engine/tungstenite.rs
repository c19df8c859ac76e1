//! The tokio-tungstenite engine: the reference implementation every other engine is compared to.
//!
//! Tuned as FIELD-NOTES measured: an 8 KiB read buffer instead of the zero-filled 128 KiB
//! default, and replies are `feed`-ed and flushed only when no further frame is ready, so
//! pipelined echoes leave in one write instead of one write each. Its steady-state echo path
//! allocates nothing per message (tungstenite hands us the payload as `Bytes`, and we send that
//! very message back). Pings are answered and close frames acknowledged inside tungstenite.

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::{ConnectionContext, Upgraded, CLOSE_WAIT};
use crate::metrics::ConnectionCounts;
use crate::shutdown::Shutdown;
use crate::workload::{AnyWorkload, DataKind, Reply, Workload};

/// Read buffer per connection (FIELD-NOTES: the 128 KiB default costs throughput and memory).
const READ_BUFFER: usize = 8 * 1024;

/// The configuration every connection gets.
pub fn websocket_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// How a connection's message loop ended.
enum End {
    /// Closing handshake done, or the peer went away; nothing left to do.
    Closed,
    /// The server is shutting down.
    Shutdown,
    /// Reading or writing failed.
    Failed(WsError),
}

pub async fn serve(upgraded: Upgraded, ctx: &ConnectionContext, mut shutdown: Shutdown) {
    let Upgraded { stream, leftover } = upgraded;
    let config = websocket_config(ctx.max_message_size);
    let mut ws = if leftover.is_empty() {
        WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await
    } else {
        WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(config)).await
    };
    let mut workload = AnyWorkload::new(ctx.workload, ctx.handler);
    let mut counts = ConnectionCounts::new(&ctx.metrics);
    let mut unflushed = false;

    let end = loop {
        // One atomic load: a connection kept busy by its client still notices shutdown.
        if shutdown.is_requested() {
            break End::Shutdown;
        }
        // Take the next message if it is already buffered or readable. Only when none is do we
        // flush the echoes fed so far, so pipelined messages share one write.
        let next = match ws.next().now_or_never() {
            Some(next) => next,
            None => {
                counts.publish();
                if unflushed {
                    tokio::select! {
                        flushed = ws.flush() => if let Err(e) = flushed { break End::Failed(e) },
                        () = shutdown.wait() => break End::Shutdown,
                    }
                    unflushed = false;
                }
                tokio::select! {
                    next = ws.next() => next,
                    () = shutdown.wait() => break End::Shutdown,
                }
            }
        };
        let msg = match next {
            None => break End::Closed,
            Some(Err(e)) => break End::Failed(e),
            Some(Ok(msg)) => msg,
        };
        ctx.pause.safepoint();
        let (kind, payload): (DataKind, &[u8]) = match &msg {
            Message::Text(t) => (DataKind::Text, t.as_bytes()),
            Message::Binary(b) => (DataKind::Binary, b),
            // Ping, pong, close: tungstenite queued any answer; the next read sends it.
            _ => continue,
        };
        let len = payload.len();
        counts.received(len);
        ctx.recorder.observe(payload);
        // Echo sends back the very message (its `Bytes` are shared, nothing is copied); a
        // workload's own reply is wrapped without copying either.
        let reply = match workload.on_message(kind, payload) {
            Reply::Echo => msg,
            Reply::Text(t) => Message::Text(t.into()),
            Reply::Binary(b) => Message::Binary(b.into()),
        };
        let reply_len = reply.len();
        if let Err(e) = ws.feed(reply).await {
            break End::Failed(e);
        }
        counts.sent(reply_len);
        unflushed = true;
        if counts.is_due() {
            counts.publish();
        }
    };
    counts.publish();

    match end {
        End::Closed => {}
        End::Shutdown => go_away(&mut ws).await,
        End::Failed(e) => {
            if let Some((code, reason)) = close_for(&e) {
                ctx.metrics.protocol_error();
                fail(&mut ws, code, reason).await;
            }
        }
    }
}

/// The close frame a failed connection gets, or `None` when the peer is gone already (I/O error,
/// reset) and there is no one to tell; only `Some` counts as a protocol error.
fn close_for(e: &WsError) -> Option<(CloseCode, &'static str)> {
    match e {
        WsError::Capacity(_) => Some((CloseCode::Size, "message too big")),
        WsError::Utf8(_) => Some((CloseCode::Invalid, "text message is not UTF-8")),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Io(_) | WsError::ConnectionClosed | WsError::AlreadyClosed => None,
        _ => Some((CloseCode::Protocol, "protocol error")),
    }
}

/// Shutdown: close with 1001 (going away), then wait for the peer's close frame, within
/// [`CLOSE_WAIT`]. Messages that still arrive are not answered.
async fn go_away(ws: &mut WebSocketStream<TcpStream>) {
    let deadline = Instant::now() + CLOSE_WAIT;
    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: Utf8Bytes::from_static("server shutting down"),
    };
    if !matches!(
        timeout_at(deadline, ws.close(Some(frame))).await,
        Ok(Ok(()))
    ) {
        return;
    }
    // The stream ends when the peer's close frame arrives (or the peer vanishes).
    let _ = timeout_at(deadline, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// A failed connection: send `code`, stop writing, and drain what the peer still sends until it
/// closes too, within [`CLOSE_WAIT`]. The frame reader may be mid-frame after an error, so the
/// rest is read as raw bytes and dropped; closing with unread input would make the kernel reset
/// the connection, and the peer could lose our close frame.
async fn fail(ws: &mut WebSocketStream<TcpStream>, code: CloseCode, reason: &'static str) {
    let deadline = Instant::now() + CLOSE_WAIT;
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    if !matches!(
        timeout_at(deadline, ws.send(Message::Close(Some(frame)))).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let _ = timeout_at(deadline, async {
        let tcp = ws.get_mut();
        tcp.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tcp.read(&mut sink).await? != 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::error::CapacityError;

    #[test]
    fn errors_map_to_close_codes() {
        let too_big = WsError::Capacity(CapacityError::MessageTooLong {
            size: 2048,
            max_size: 1024,
        });
        assert_eq!(close_for(&too_big).map(|c| c.0), Some(CloseCode::Size));
        let masked = WsError::Protocol(ProtocolError::UnmaskedFrameFromClient);
        assert_eq!(close_for(&masked).map(|c| c.0), Some(CloseCode::Protocol));
        assert_eq!(
            close_for(&WsError::Utf8("x".into())).map(|c| c.0),
            Some(CloseCode::Invalid)
        );
        let reset = WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(close_for(&reset), None);
        assert_eq!(
            close_for(&WsError::Io(std::io::ErrorKind::BrokenPipe.into())),
            None
        );
    }

    #[test]
    fn config_follows_the_plan() {
        let c = websocket_config(1024);
        assert_eq!(c.read_buffer_size, READ_BUFFER);
        assert_eq!(c.max_message_size, Some(1024));
        assert_eq!(c.max_frame_size, Some(1024));
    }
}
