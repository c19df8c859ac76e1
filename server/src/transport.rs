//! The byte stream under both engines and the HTTP side: an accepted TCP socket, or TLS over it.
//! The TLS handshake is the one accept step both engines share ([`Tls::accept`]); after it an
//! engine sees `AsyncRead + AsyncWrite` and a readiness check.
//!
//! rustls keeps encrypted output of its own: a write may leave records in it when the socket is
//! full. A [`Stream`] pushes them out after every write and before every read, so an engine that
//! polls reads while it waits (both do) never leaves a reply stuck unsent.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// An accepted connection: plain, or TLS (boxed: rustls's state is ~1 KiB, a plain socket a few
/// words, and an idle connection's task is as large as the larger variant).
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The server's TLS settings: certificate chain and key, loaded once.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}")]
pub struct TlsFilesError {
    pub path: PathBuf,
    pub what: String,
}

impl Tls {
    /// Loads a PEM certificate chain (leaf first) and its PEM private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsFilesError> {
        let err = |path: &Path, what: String| TlsFilesError { path: path.to_owned(), what };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| err(cert, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(err(cert, "no certificate in the file (PEM `-----BEGIN CERTIFICATE-----` blocks expected)".into()));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, format!("no usable private key: {e}")))?;
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| err(cert, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| err(key, format!("does not go with the certificate: {e}")))?;
        Ok(Self { acceptor: TlsAcceptor::from(Arc::new(config)) })
    }

    /// The TLS handshake on an accepted socket; the caller bounds its time.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<Stream> {
        Ok(Stream::Tls(Box::new(self.acceptor.accept(tcp).await?)))
    }
}

impl Stream {
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
    fn poll_push(tls: &mut TlsStream<TcpStream>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if tls.get_ref().1.wants_write() {
            Pin::new(tls).poll_flush(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

impl AsyncRead for Stream {
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

impl AsyncWrite for Stream {
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
