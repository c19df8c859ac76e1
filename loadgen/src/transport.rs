//! The byte stream under both client engines: plain TCP, or TLS over it. Opening one (TCP
//! connect, `TCP_NODELAY`, the TLS handshake for `wss://`) happens once, here, for both engines,
//! and times each step; after that an engine sees only `AsyncRead + AsyncWrite`.
//!
//! rustls keeps encrypted output of its own: a write may leave records in it when the socket is
//! full. A [`Transport`] therefore pushes them out after every write and before every read, so
//! an engine that polls reads while it waits (both do) never leaves a message stuck unsent.

use std::borrow::Cow;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpStream;
pub use wsbench_core::tls_io::MaybeTls;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use wsbench_core::token::{self, TokenSecret};

/// How long a token minted for one connection's upgrade stays valid: it is checked once, at
/// the upgrade, moments after it was minted.
pub const CONNECTION_TOKEN_TTL: Duration = Duration::from_secs(60);
use wsbench_core::clock::now_ns;

use crate::client::ConnectError;

/// A connection's socket: plain, or TLS over it.
pub type Transport = MaybeTls<TlsStream<TcpStream>>;

/// Where and how to connect: built once per process, shared by every connection.
#[derive(Clone)]
pub struct Target {
    /// `host:port` for the TCP connect.
    pub addr: String,
    pub url: String,
    /// TLS settings and the name the certificate must carry; `None` for `ws://`.
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Extra request headers, `(name, value)`, checked when the target was made.
    pub headers: Vec<(String, String)>,
    /// Subprotocols offered, in order of preference; none: no `Sec-WebSocket-Protocol` header.
    pub subprotocols: Vec<String>,
    /// Mint a token for every connection's upgrade URL with this secret.
    pub token: Option<TokenSecret>,
    /// permessage-deflate offered with these parameters (the zero-alloc engine's handshake).
    pub deflate: Option<wsbench_core::codec::deflate::DeflateConfig>,
    /// Set TCP_NODELAY on every socket (the default; `--no-nodelay` leaves Nagle on).
    pub nodelay: bool,
}

/// How long opening a transport took, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenTimes {
    /// `connect()` called → TCP connection established.
    pub connect_ns: u64,
    /// TLS ClientHello sent → handshake complete; `None` without TLS.
    pub tls_ns: Option<u64>,
}

/// Which certificates a `wss://` server may present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust<'a> {
    /// The system's root certificates.
    System,
    /// Only certificates issued by the CA (or CAs) in this PEM file.
    Ca(&'a Path),
    /// Any certificate at all: for self-signed test servers. Signatures are still checked.
    Insecure,
}

impl Target {
    /// The target of `url` at `addr`, with TLS (trusting `trust`) when the URL is `wss://`.
    pub fn new(url: &str, addr: String, host: &str, secure: bool, trust: Trust<'_>) -> Result<Self, String> {
        let tls = if secure {
            let config = client_config(trust)?;
            // IPv6 literals arrive in brackets; the certificate names the bare address.
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(bare.to_owned()).map_err(|e| format!("`{host}` cannot be checked against a TLS certificate: {e}"))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self { addr, url: url.to_owned(), tls, headers: Vec::new(), subprotocols: Vec::new(), token: None, deflate: None, nodelay: true })
    }

    /// Sends `headers` with every handshake request; a name or value HTTP forbids is an error.
    pub fn with_headers(mut self, headers: Vec<(String, String)>, subprotocols: Vec<String>) -> Result<Self, String> {
        for (name, value) in &headers {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("--header `{name}`: not a valid HTTP header name"))?;
            HeaderValue::from_str(value).map_err(|_| format!("--header `{name}`: its value has characters HTTP forbids"))?;
        }
        for p in &subprotocols {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)) {
                return Err(format!("--subprotocol `{p}`: a subprotocol is an HTTP token (letters, digits, `-`, `.` and the like)"));
            }
        }
        self.headers = headers;
        self.subprotocols = subprotocols;
        Ok(self)
    }

    /// The same server, TLS, headers and token secret at another URL of it (a broadcast
    /// room's path): a token is then minted for that URL's path.
    pub fn at_url(&self, url: String) -> Self {
        Self { url, ..self.clone() }
    }

    /// Mints a token per connection with `secret` (see [`Target::connection_url`]).
    pub fn with_token(mut self, secret: Option<TokenSecret>) -> Self {
        self.token = secret;
        self
    }

    /// The URL one connection asks for: the target's, with a token minted now for its path
    /// when the target has a secret. Error messages name [`Target::url`], without the token.
    pub fn connection_url(&self) -> Cow<'_, str> {
        let Some(secret) = &self.token else {
            return Cow::Borrowed(&self.url);
        };
        let authority = self.url.find("://").map_or(0, |i| i + 3);
        let path_at = self.url[authority..].find(['/', '?']).map_or(self.url.len(), |i| authority + i);
        let (base, target) = self.url.split_at(path_at);
        let (path, _) = token::split_target(target);
        let minted = secret.mint_for(path, CONNECTION_TOKEN_TTL, SystemTime::now());
        Cow::Owned(format!("{base}{}", token::with_token(target, &minted)))
    }

    /// The `Sec-WebSocket-Protocol` value offered, if any.
    pub fn offered_subprotocols(&self) -> Option<String> {
        (!self.subprotocols.is_empty()).then(|| self.subprotocols.join(", "))
    }

    /// The handshake request tungstenite sends: the URL's, plus our headers and subprotocols.
    pub fn request(&self) -> Result<Request, tokio_tungstenite::tungstenite::Error> {
        let mut req = self.connection_url().as_ref().into_client_request()?;
        let h = req.headers_mut();
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                h.append(n, v);
            }
        }
        if let Some(offer) = self.offered_subprotocols() {
            if let Ok(v) = HeaderValue::from_str(&offer) {
                h.insert("sec-websocket-protocol", v);
            }
        }
        Ok(req)
    }

    /// Opens the transport: TCP with `TCP_NODELAY`, then TLS when the target has it.
    pub async fn open(&self) -> Result<(Transport, OpenTimes), ConnectError> {
        let addr = &self.addr;
        let t0 = now_ns();
        let tcp = TcpStream::connect(addr).await.map_err(|e| ConnectError::io(&e, format!("cannot connect to {addr}: {e}")))?;
        let t1 = now_ns();
        tcp.set_nodelay(self.nodelay).map_err(|e| ConnectError::io(&e, format!("cannot set TCP_NODELAY: {e}")))?;
        let mut times = OpenTimes { connect_ns: t1 - t0, tls_ns: None };
        let Some((connector, name)) = &self.tls else {
            return Ok((Transport::Plain(tcp), times));
        };
        let t2 = now_ns();
        let tls = connector.connect(name.clone(), tcp).await.map_err(|e| tls_error(&e, addr))?;
        times.tls_ns = Some(now_ns() - t2);
        Ok((Transport::Tls(Box::new(tls)), times))
    }
}

/// A failed TLS handshake: `TLS error: ...` for what rustls refused (an unknown issuer, a name
/// mismatch), the socket's cause otherwise.
fn tls_error(e: &io::Error, addr: &str) -> ConnectError {
    let rustls = e.get_ref().and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>());
    match rustls {
        Some(r) => ConnectError::new(format!("TLS error: {r}"), format!("TLS handshake with {addr} failed: {r} (a self-signed server needs --ca FILE or --insecure)")),
        None => ConnectError::io(e, format!("TLS handshake with {addr} failed: {e}")),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The client's TLS configuration for `trust`.
pub fn client_config(trust: Trust<'_>) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(|e| format!("TLS setup failed: {e}"))?;
    let config = match trust {
        Trust::Insecure => builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider()))).with_no_client_auth(),
        Trust::Ca(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("--ca {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("--ca {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("--ca {}: not a usable CA certificate: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("--ca {}: no certificate in the file (PEM `-----BEGIN CERTIFICATE-----` blocks expected)", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("no system root certificates found; pass --ca FILE (or --insecure for a self-signed test server)".into());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(config)
}

/// `--insecure`: accepts whatever certificate the server presents, but still checks that the
/// server holds its key (the handshake signatures), so a benchmark pays the usual crypto.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_url_carries_a_token_for_its_path() {
        let secret = TokenSecret::from_bytes(b"loadgen test secret, 16+ bytes").unwrap();
        let now = token::unix_seconds(SystemTime::now());
        for (url, path, query_before) in [
            ("ws://127.0.0.1:9001", "/", ""),
            ("ws://127.0.0.1:9001/", "/", ""),
            ("ws://127.0.0.1:9001/room/3?x=1", "/room/3", "x=1&"),
        ] {
            let target = Target::new(url, "127.0.0.1:9001".into(), "127.0.0.1", false, Trust::System)
                .unwrap()
                .with_token(Some(secret.clone()));
            let asked = target.connection_url().into_owned();
            let (base, query) = asked.split_once('?').unwrap();
            assert!(base.ends_with(path) || (path == "/" && base.ends_with(":9001/")), "{asked}");
            let query = query.strip_prefix(query_before).unwrap_or_else(|| panic!("{asked}"));
            let minted = token::token_in_query(Some(query)).unwrap();
            assert_eq!(secret.verify(path, Some(minted), now), Ok(()), "{asked}");
            // The request tungstenite sends asks for the same target.
            let req = target.request().unwrap();
            assert!(req.uri().query().unwrap().contains("token="), "{asked}");
        }
        let plain = Target::new("ws://h:1/a", "h:1".into(), "h", false, Trust::System).unwrap();
        assert_eq!(plain.connection_url(), "ws://h:1/a");
    }
}
