//! The client's check of the server's `101` response: arbitrary bytes never panic and a
//! complete response never claims more bytes than it was given; a valid response for the key
//! is accepted with its exact length, and the same response for another key is refused; a
//! subprotocol is accepted only when it was offered.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use wsbench_loadgen::zero::check_response;

fuzz_target!(|data: &[u8]| {
    let mut nonce = [0u8; 16];
    let n = data.len().min(16);
    nonce[..n].copy_from_slice(&data[..n]);
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);

    let offered = ["chat".to_owned()];
    if let Ok(Some((len, chosen))) = check_response(data, &key, &offered) {
        assert!(len <= data.len());
        assert!(chosen.is_none_or(|c| c == "chat"), "accepted a subprotocol that was not offered");
    }

    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    let mut wire = resp.clone().into_bytes();
    wire.extend_from_slice(data); // frames may follow the head at once
    assert_eq!(check_response(&wire, &key, &[]), Ok(Some((resp.len(), None))));
    assert_eq!(check_response(&resp.as_bytes()[..resp.len() - 1], &key, &[]), Ok(None));
    nonce[0] ^= 1;
    let other = base64::engine::general_purpose::STANDARD.encode(nonce);
    assert!(check_response(&wire, &other, &[]).is_err(), "accepted the accept key of another nonce");
});
