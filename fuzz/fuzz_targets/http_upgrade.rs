//! The server's HTTP request-head parser: arbitrary bytes never panic and a complete head
//! never claims more bytes than it was given; a valid upgrade built from the input is routed
//! to the WebSocket with the right accept key, and its prefixes ask for more bytes.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use wsbench_server::{parse_head, Route};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((route, len))) = parse_head(data) {
        assert!(len <= data.len());
        if let Route::WebSocket { accept, .. } = route {
            assert_eq!(accept.len(), 28);
        }
    }

    let mut nonce = [0u8; 16];
    let n = data.len().min(16);
    nonce[..n].copy_from_slice(&data[..n]);
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let path: String = data.iter().skip(16).take(64).map(|b| char::from(b'a' + b % 26)).collect();
    let req = format!(
        "GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let mut wire = req.clone().into_bytes();
    wire.extend_from_slice(data); // a first frame may follow the head at once
    assert_eq!(parse_head(&wire), Ok(Some((Route::WebSocket { accept: derive_accept_key(key.as_bytes()), offered: vec![], room: None, origin: None, target: format!("/{path}"), extensions: vec![] }, req.len()))));
    for cut in [0, req.len() / 2, req.len() - 1] {
        assert_eq!(parse_head(&req.as_bytes()[..cut]), Ok(None), "prefix of {cut} bytes");
    }
});
