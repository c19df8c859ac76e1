//! The byte stream under every engine on both sides: plain TCP, or TLS over it (feature
//! `tls-io`, used by the server and the load generator; analysis never needs it).
//!
//! rustls keeps encrypted output of its own: a write may leave records in it when the socket is
//! full. A [`MaybeTls`] therefore pushes them out after every write and before every read, so an
//! engine that polls reads while it waits (all of them do) never leaves a message stuck unsent.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TLS stream of either side, with a way to ask whether rustls holds unsent records.
pub trait TlsSide: AsyncRead + AsyncWrite + Unpin {
    fn wants_write(&self) -> bool;
}

impl TlsSide for tokio_rustls::client::TlsStream<TcpStream> {
    fn wants_write(&self) -> bool {
        self.get_ref().1.wants_write()
    }
}

impl TlsSide for tokio_rustls::server::TlsStream<TcpStream> {
    fn wants_write(&self) -> bool {
        self.get_ref().1.wants_write()
    }
}

/// A connection's socket: plain, or TLS (boxed: rustls's state is ~1 KiB, a plain socket a few
/// words, and every connection's task is as large as the larger variant).
#[derive(Debug)]
pub enum MaybeTls<S> {
    Plain(TcpStream),
    Tls(Box<S>),
}

impl<S: TlsSide> MaybeTls<S> {
    /// Ready when a read may return bytes. A plain socket asks the OS, without a buffer; TLS
    /// may hold decrypted bytes the OS knows nothing of, so it is always worth a read.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(tcp) => tcp.poll_read_ready(cx),
            Self::Tls(_) => Poll::Ready(Ok(())),
        }
    }

    /// Waits until [`Self::try_read_ready`] is worth calling (see [`Self::poll_read_ready`]).
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.readable().await,
            Self::Tls(_) => Ok(()),
        }
    }

    /// After [`Self::readable`]: a plain socket reads what is there or says `WouldBlock`; TLS
    /// reads, waiting for a record if need be.
    pub async fn try_read_ready(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.try_read(buf),
            Self::Tls(tls) => tls.read(buf).await,
        }
    }

    /// Pushes out TLS records rustls still holds; `Pending` registers for writability.
    fn poll_push(tls: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if tls.wants_write() {
            Pin::new(tls).poll_flush(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

impl<S: TlsSide> AsyncRead for MaybeTls<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => {
                // Pending output is waited for by the waker it registers, not here.
                if let Poll::Ready(Err(e)) = Self::poll_push(tls, cx) {
                    return Poll::Ready(Err(e));
                }
                Pin::new(&mut **tls).poll_read(cx, buf)
            }
        }
    }
}

impl<S: TlsSide> AsyncWrite for MaybeTls<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, data),
            Self::Tls(tls) => {
                let n = std::task::ready!(Pin::new(&mut **tls).poll_write(cx, data))?;
                // What rustls encrypted but the socket did not take goes out on the next poll.
                if let Poll::Ready(Err(e)) = Self::poll_push(tls, cx) {
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(n))
            }
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            tls @ Self::Tls(_) => {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &**b);
                Pin::new(tls).poll_write(cx, first)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        matches!(self, Self::Plain(tcp) if tcp.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}
