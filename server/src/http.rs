//! The HTTP side of every connection: reading the request head, deciding its route, answering.
//!
//! Each accepted socket first sends an HTTP/1.1 request head. It is read into one buffer of at
//! most [`MAX_HEAD`] bytes (grown as bytes arrive), within the handshake timeout, and parsed
//! with `httparse` only once the buffer holds a complete head. [`route`] is pure (bytes in,
//! [`Route`] out) so it is tested without sockets. Bytes after the head are handed on: a WebSocket client may send its first
//! frame right behind its upgrade request. The WebSocket handshake is answered here, by us, so
//! every engine starts from the same upgraded socket. What `/healthz` and `/metrics` say is
//! `routes`' business.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::gate::Denial;
use crate::transport::Stream;

/// Largest request head accepted; larger ones get 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// Bytes read per readiness while a head arrives (into a stack buffer): what a typical upgrade
/// request needs. The head buffer grows by what was read, never to [`MAX_HEAD`] up front, so a
/// pending handshake holds only the bytes its client sent.
const HEAD_READ: usize = 1024;
/// How long a refused (503) client gets to take its answer before the socket is dropped.
const BUSY_LINGER: Duration = Duration::from_secs(1);
/// Most headers a request may have.
const MAX_HEADERS: usize = 32;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `GET /client`: the browser page.
    Client,
    /// A valid WebSocket upgrade; `accept` is the `Sec-WebSocket-Accept` value to answer with,
    /// `offered` the subprotocols the client offered, in its order, `room` the broadcast room
    /// its path names (`/room/<k>`), if any; `origin` and `target` (path and query) are for
    /// the gate; `extensions` the values of its `Sec-WebSocket-Extensions` headers (empty,
    /// unallocated, when it offered none).
    WebSocket {
        accept: String,
        offered: Vec<String>,
        room: Option<u32>,
        origin: Option<String>,
        target: String,
        extensions: Vec<String>,
    },
    /// Answer with an error status and close.
    Refuse(Refusal),
}

/// Why a request is refused, and so which status it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: malformed request or incomplete WebSocket upgrade.
    BadRequest(&'static str),
    /// 404: no such path.
    NotFound,
    /// 404: a broadcast room beyond `--rooms`.
    NoSuchRoom { room: u32, rooms: u32 },
    /// 405: a known path with another method than GET.
    MethodNotAllowed,
    /// 426: a WebSocket version other than 13.
    UpgradeRequired,
    /// 431: the head does not fit in [`MAX_HEAD`] bytes or has too many headers.
    HeadTooLarge,
    /// 401, 403 or 429: the gate refused the upgrade.
    Denied(Denial),
}

impl Refusal {
    /// Status line, extra headers and a one-line body saying what to do.
    fn response(self) -> (&'static str, String, String) {
        let (status, extra, body) = match self {
            Self::Denied(denial) => return denied(denial),
            Self::BadRequest(why) => ("400 Bad Request", "", format!("bad request: {why}\n")),
            Self::NotFound => (
                "404 Not Found",
                "",
                "not found; try /healthz, /metrics, /client or a WebSocket upgrade\n".into(),
            ),
            Self::NoSuchRoom { room, rooms } => (
                "404 Not Found",
                "",
                format!("no room {room}: this server has {rooms} (/room/0 to /room/{})\n", rooms.saturating_sub(1)),
            ),
            Self::MethodNotAllowed => (
                "405 Method Not Allowed",
                "Allow: GET\r\n",
                "use GET\n".into(),
            ),
            Self::UpgradeRequired => (
                "426 Upgrade Required",
                "Sec-WebSocket-Version: 13\r\n",
                "only WebSocket version 13 is spoken here\n".into(),
            ),
            Self::HeadTooLarge => (
                "431 Request Header Fields Too Large",
                "",
                format!("request head over {MAX_HEAD} bytes or {MAX_HEADERS} headers\n"),
            ),
        };
        (status, extra.to_owned(), body)
    }
}

/// The answer to an upgrade the gate refused: what was wrong and what to do about it.
fn denied(denial: Denial) -> (&'static str, String, String) {
    match denial {
        Denial::Origin => (
            "403 Forbidden",
            String::new(),
            "origin not allowed: this server accepts upgrades only from its --allow-origin list\n".into(),
        ),
        Denial::TokenMissing => (
            "401 Unauthorized",
            String::new(),
            "token required: add ?token=<expiry>.<mac> to the URL (wsbench token --secret FILE prints one)\n".into(),
        ),
        Denial::TokenForged => (
            "403 Forbidden",
            String::new(),
            "token refused: not signed with this server's secret for this path and expiry\n".into(),
        ),
        Denial::TokenExpired { expiry } => (
            "401 Unauthorized",
            String::new(),
            format!("token expired at {expiry} (Unix seconds): get a new one\n"),
        ),
        Denial::Rate { retry_after_s } => (
            "429 Too Many Requests",
            format!("Retry-After: {retry_after_s}\r\n"),
            format!("too many connections from your address (--conn-rate): retry in {retry_after_s} s\n"),
        ),
    }
}

/// Parses the head at the start of `buf`. `Ok(None)`: incomplete, read more.
/// `Ok(Some((route, len)))`: complete; the head is `buf[..len]`, the rest belongs to the body
/// or to the WebSocket stream.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Route, usize)>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Ok(Some((route(&req), len))),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Err(Refusal::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(Refusal::HeadTooLarge),
        Err(_) => Err(Refusal::BadRequest("not an HTTP/1.1 request")),
    }
}

/// Decides where a complete request goes.
pub fn route(req: &httparse::Request<'_, '_>) -> Route {
    let method = req.method.unwrap_or("");
    if header_has_token(req, "upgrade", "websocket") {
        return websocket(req, method);
    }
    let path = req.path.unwrap_or("");
    // The query string does not choose the route.
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let known = match path {
        "/healthz" => Route::Health,
        "/metrics" => Route::Metrics,
        "/client" => Route::Client,
        _ => return Route::Refuse(Refusal::NotFound),
    };
    if method == "GET" {
        known
    } else {
        Route::Refuse(Refusal::MethodNotAllowed)
    }
}

fn websocket(req: &httparse::Request<'_, '_>, method: &str) -> Route {
    let bad = |why| Route::Refuse(Refusal::BadRequest(why));
    if method != "GET" {
        return bad("a WebSocket upgrade must use GET");
    }
    if req.version != Some(1) {
        return bad("a WebSocket upgrade needs HTTP/1.1");
    }
    if !header_has_token(req, "connection", "upgrade") {
        return bad("a WebSocket upgrade needs `Connection: Upgrade`");
    }
    match header(req, "sec-websocket-version") {
        Some(v) if v.trim_ascii() == b"13" => {}
        _ => return Route::Refuse(Refusal::UpgradeRequired),
    }
    let Some(key) = header(req, "sec-websocket-key").map(<[u8]>::trim_ascii) else {
        return bad("Sec-WebSocket-Key is missing");
    };
    if !is_websocket_key(key) {
        return bad("Sec-WebSocket-Key is not 16 bytes in base64");
    }
    let offered = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .filter_map(|v| std::str::from_utf8(v.trim_ascii()).ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    let extensions = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .map(str::to_owned)
        .collect();
    let target = req.path.unwrap_or("");
    Route::WebSocket {
        accept: derive_accept_key(key),
        offered,
        room: room_of(target),
        // Not UTF-8 cannot match an allowed origin; it is kept as given so it is refused.
        origin: header(req, "origin").map(|o| String::from_utf8_lossy(o).into_owned()),
        target: target.to_owned(),
        extensions,
    }
}

/// The subprotocol to answer with: the first of the client's `offered` that the server
/// `speaks` (RFC 6455 4.2.2 leaves the choice to the server; the client's order is its preference).
pub fn choose_subprotocol<'a>(speaks: &[String], offered: &'a [String]) -> Option<&'a str> {
    offered
        .iter()
        .find(|o| speaks.iter().any(|s| s == *o))
        .map(String::as_str)
}

/// The room a WebSocket path names: `/room/<k>` (query string aside).
fn room_of(path: &str) -> Option<u32> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.strip_prefix("/room/")?.parse().ok()
}

/// RFC 6455 4.2.1: the key is 16 random bytes in base64, which is always 22 characters and `==`.
fn is_websocket_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn header<'a>(req: &httparse::Request<'_, 'a>, name: &str) -> Option<&'a [u8]> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// True when any header `name` lists `token` among its comma-separated values (case-insensitive).
fn header_has_token(req: &httparse::Request<'_, '_>, name: &str, token: &str) -> bool {
    req.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|v| v.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A request head that was read and parsed, with the bytes that followed it.
#[derive(Debug)]
pub struct Request {
    pub route: Route,
    pub leftover: Vec<u8>,
}

/// Why no request could be read. Nothing is left to answer except for `Refused`.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed or broke the connection.
    Gone,
    /// The client sent no complete head in time.
    TimedOut,
    Refused(Refusal),
}

/// Reads one request head from `stream`, bounded in size by [`MAX_HEAD`] and in time by
/// `deadline` (the handshake timeout from the socket's accept).
pub async fn read_request(stream: &mut Stream, deadline: Instant) -> Result<Request, ReadError> {
    match tokio::time::timeout_at(deadline, read_head(stream)).await {
        Ok(r) => r,
        Err(_) => Err(ReadError::TimedOut),
    }
}

async fn read_head(stream: &mut Stream) -> Result<Request, ReadError> {
    // Nothing is allocated until bytes arrive: each read goes to the stack first, so a socket
    // that is reported readable but has nothing to say costs no buffer.
    let mut buf = Vec::new();
    loop {
        stream.readable().await.map_err(|_| ReadError::Gone)?;
        let mut chunk = [0u8; HEAD_READ];
        let room = (MAX_HEAD - buf.len()).min(HEAD_READ);
        match stream.try_read_ready(&mut chunk[..room]).await {
            Ok(0) => return Err(ReadError::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return Err(ReadError::Gone),
        }
        if let Some((route, len)) = parse_head(&buf).map_err(ReadError::Refused)? {
            buf.drain(..len);
            buf.shrink_to_fit();
            return Ok(Request {
                route,
                leftover: buf,
            });
        }
    }
}

/// Answers a socket beyond `--max-connections` with 503 without reading its request, then
/// lingers briefly reading and dropping what it sent, so that closing does not reset the
/// connection under the answer.
pub async fn busy(mut stream: Stream, max_connections: usize) {
    let body = format!(
        "server busy: {max_connections} connections (--max-connections) are open; try again later\n"
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(BUSY_LINGER, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 512];
        while stream.read(&mut sink).await? != 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// Answers `101 Switching Protocols` to a validated upgrade,
/// with the chosen `subprotocol` and the accepted `extensions` (a header value), if any.
pub async fn switch_protocols(
    stream: &mut Stream,
    accept: &str,
    subprotocol: Option<&str>,
    extensions: Option<&str>,
) -> io::Result<()> {
    let protocol = subprotocol
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    let extensions = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    let head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{protocol}{extensions}\r\n");
    stream.write_all(head.as_bytes()).await?;
    // TLS may hold the answer until flushed; a plain socket's flush does nothing.
    stream.flush().await
}

/// Writes a complete response and closes our side of the connection.
pub async fn respond(
    stream: &mut Stream,
    status: &str,
    extra_headers: &str,
    content_type: &str,
    body: &str,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\n{extra_headers}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // One write for head and body: one segment for small answers.
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body.as_bytes());
    stream.write_all(&out).await?;
    stream.shutdown().await
}

/// Answers a refused request.
pub async fn refuse(stream: &mut Stream, refusal: Refusal) -> io::Result<()> {
    let (status, extra, body) = refusal.response();
    respond(stream, status, &extra, "text/plain; charset=utf-8", &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn parse(text: &str) -> Result<Option<(Route, usize)>, Refusal> {
        parse_head(text.as_bytes())
    }

    fn route_of(text: &str) -> Route {
        match parse(text) {
            Ok(Some((r, _))) => r,
            Ok(None) => panic!("incomplete: {text:?}"),
            Err(r) => Route::Refuse(r),
        }
    }

    fn upgrade(extra: &str) -> String {
        format!("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n")
    }

    #[test]
    fn side_routes() {
        assert_eq!(
            route_of("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Health
        );
        assert_eq!(
            route_of("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route_of("GET /client?n=5 HTTP/1.1\r\n\r\n"), Route::Client);
        assert_eq!(
            route_of("GET /nope HTTP/1.1\r\n\r\n"),
            Route::Refuse(Refusal::NotFound)
        );
        assert_eq!(
            route_of("POST /healthz HTTP/1.1\r\n\r\n"),
            Route::Refuse(Refusal::MethodNotAllowed)
        );
    }

    #[test]
    fn websocket_upgrade_answers_the_rfc_example_key() {
        // RFC 6455 section 1.3.
        let r = route_of(&upgrade("Sec-WebSocket-Version: 13\r\n"));
        assert_eq!(
            r,
            Route::WebSocket {
                accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(),
                offered: vec![],
                room: None,
                origin: None,
                target: "/chat".into(),
                extensions: vec![],
            }
        );
        let r = route_of(&upgrade(
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nsec-websocket-extensions: foo\r\n",
        ));
        let Route::WebSocket { extensions, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(extensions, ["permessage-deflate; client_max_window_bits", "foo"]);
    }

    #[test]
    fn the_first_offered_subprotocol_the_server_speaks_is_chosen() {
        let r = route_of(&upgrade(
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: b, a\r\nSec-WebSocket-Protocol: c\r\n",
        ));
        let Route::WebSocket { offered, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(offered, ["b", "a", "c"]);
        let speaks = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_subprotocol(&speaks(&["a", "b"]), &offered), Some("b"));
        assert_eq!(choose_subprotocol(&speaks(&["c"]), &offered), Some("c"));
        assert_eq!(choose_subprotocol(&speaks(&["d"]), &offered), None);
        assert_eq!(choose_subprotocol(&[], &offered), None);
    }

    #[test]
    fn room_paths_name_their_room() {
        assert_eq!(room_of("/room/7"), Some(7));
        assert_eq!(room_of("/room/0?x=1"), Some(0));
        assert_eq!(room_of("/room/lobby"), None);
        assert_eq!(room_of("/chat"), None);
        let r = route_of(&upgrade("Sec-WebSocket-Version: 13\r\n").replace("/chat", "/room/3"));
        assert!(matches!(r, Route::WebSocket { room: Some(3), .. }), "{r:?}");
    }

    #[test]
    fn incomplete_websocket_upgrades_are_refused() {
        assert_eq!(
            route_of(&upgrade("")),
            Route::Refuse(Refusal::UpgradeRequired)
        );
        assert_eq!(
            route_of(&upgrade("Sec-WebSocket-Version: 8\r\n")),
            Route::Refuse(Refusal::UpgradeRequired)
        );
        let no_key = "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert!(matches!(
            route_of(no_key),
            Route::Refuse(Refusal::BadRequest(_))
        ));
        let bad_key = no_key.replace("\r\n\r\n", "\r\nSec-WebSocket-Key: short\r\n\r\n");
        assert!(matches!(
            route_of(&bad_key),
            Route::Refuse(Refusal::BadRequest(_))
        ));
        let no_connection = upgrade("Sec-WebSocket-Version: 13\r\n")
            .replace("Connection: keep-alive, Upgrade", "Connection: keep-alive");
        assert!(matches!(
            route_of(&no_connection),
            Route::Refuse(Refusal::BadRequest(_))
        ));
        let post = upgrade("Sec-WebSocket-Version: 13\r\n").replacen("GET", "POST", 1);
        assert!(matches!(
            route_of(&post),
            Route::Refuse(Refusal::BadRequest(_))
        ));
    }

    #[test]
    fn partial_heads_ask_for_more_and_leftovers_are_kept() {
        assert_eq!(parse("GET /healthz HTTP/1.1\r\nHost:"), Ok(None));
        let text = upgrade("Sec-WebSocket-Version: 13\r\n") + "\u{82}\u{0}";
        let (_, len) = parse(&text).unwrap().unwrap();
        assert_eq!(&text.as_bytes()[len..], "\u{82}\u{0}".as_bytes());
    }

    #[test]
    fn oversized_and_malformed_heads_are_refused() {
        let long = format!("GET /healthz HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(parse(&long), Err(Refusal::HeadTooLarge));
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("H{i}: v\r\n"))
            .collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Err(Refusal::HeadTooLarge)
        );
        assert!(matches!(
            parse("\u{1}\u{2} nonsense\r\n\r\n"),
            Err(Refusal::BadRequest(_))
        ));
    }
}
