//! The byte stream under both engines and the HTTP side: an accepted TCP socket, or TLS over it.
//! The TLS handshake is the one accept step both engines share ([`Tls::accept`]); after it an
//! engine sees `AsyncRead + AsyncWrite` and a readiness check.
//!
//! rustls keeps encrypted output of its own: a write may leave records in it when the socket is
//! full. A [`Stream`] pushes them out after every write and before every read, so an engine that
//! polls reads while it waits (both do) never leaves a reply stuck unsent.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpStream;
pub use wsbench_core::tls_io::MaybeTls;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// An accepted connection: plain, or TLS over it.
pub type Stream = MaybeTls<TlsStream<TcpStream>>;

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

