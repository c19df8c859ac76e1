//! permessage-deflate (RFC 7692): negotiating it, and compressing and inflating messages.
//!
//! Negotiation is pure text: [`negotiate`] answers a client's `Sec-WebSocket-Extensions` offers
//! with what a server's [`DeflateConfig`] allows, [`offer`] writes a client's offer and
//! [`accept_response`] checks a server's answer against it. Either side ends with an
//! [`Agreement`]: the four parameters of section 7.1 as both ends now apply them.
//!
//! [`Deflater`] and [`Inflater`] keep one connection's zlib state (flate2 over zlib-rs; the
//! window-bits parameters need a zlib backend) and their own output buffers, reused from message
//! to message: once those buffers have grown to the connection's message size, compressing and
//! inflating allocate nothing. Unlike the rest of the codec they do own memory, so they live
//! in a connection's state, allocated once when the connection opens.
//!
//! The inflated size is bounded: [`Inflater`] never grows its output past the message limit
//! plus one byte, and a message that would inflate beyond it fails with
//! [`ProtocolError::TooLarge`] (close 1009), however small its compressed frames were.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use serde::{Deserialize, Serialize};

use super::ProtocolError;

/// The reserved bit that marks a compressed message's first frame (RFC 7692 section 6).
pub const RSV1: u8 = 0b100;

/// The extension's token in `Sec-WebSocket-Extensions`.
pub const NAME: &str = "permessage-deflate";

/// The tail of a sync flush, which senders remove and receivers put back (section 7.2.1).
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Smallest LZ77 window zlib compresses with for raw deflate: an offer that limits our window
/// to 8 bits is declined (zlib would silently use 9, which the peer may not inflate).
pub const MIN_WINDOW_BITS: u8 = 9;
/// Largest window, and the default of both `*_max_window_bits`.
pub const MAX_WINDOW_BITS: u8 = 15;

/// Output grown by at least this much at a time while inflating.
const INFLATE_STEP: usize = 4096;

/// What one side is willing to agree to: the server's flags, or the client's offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeflateConfig {
    /// The server compresses with at most this window (9-15). A server answers an offer that
    /// asks for less with the smaller of the two.
    pub server_max_window_bits: u8,
    /// Ask the client to compress with at most this window (9-15); only possible when the
    /// client's offer says it can (`client_max_window_bits` in the offer).
    pub client_max_window_bits: Option<u8>,
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: None,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
        }
    }
}

impl DeflateConfig {
    /// The flags that give this configuration (`--deflate` and the parameters that differ
    /// from the defaults), as both `wsbench server` and `wsbench loadgen` take them.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec!["--deflate".to_owned()];
        if self.server_max_window_bits != MAX_WINDOW_BITS {
            a.extend(["--deflate-server-max-window-bits".into(), self.server_max_window_bits.to_string()]);
        }
        if let Some(n) = self.client_max_window_bits {
            a.extend(["--deflate-client-max-window-bits".into(), n.to_string()]);
        }
        if self.server_no_context_takeover {
            a.push("--deflate-server-no-context-takeover".into());
        }
        if self.client_no_context_takeover {
            a.push("--deflate-client-no-context-takeover".into());
        }
        a
    }
}

/// The parameters in force on one connection, as both ends apply them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    pub server_max_window_bits: u8,
    pub client_max_window_bits: u8,
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
}

impl Agreement {
    /// The `Sec-WebSocket-Extensions` value a server answers with for this agreement;
    /// `window_params` are the window-bits parameters the offer allows it to name.
    fn response(&self, server_bits: bool, client_bits: bool) -> String {
        let mut s = NAME.to_owned();
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if server_bits {
            s.push_str(&format!("; server_max_window_bits={}", self.server_max_window_bits));
        }
        if client_bits {
            s.push_str(&format!("; client_max_window_bits={}", self.client_max_window_bits));
        }
        s
    }
}

impl Agreement {
    /// The parameters in the form of a response header value, every one named: how results
    /// record an agreement.
    pub fn describe(&self) -> String {
        self.response(true, true)
    }
}

/// One `permessage-deflate` element of an offer or response, its parameters checked for syntax
/// (each at most once, known names, values in range) but not yet judged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

/// Why an element's parameters are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParams(pub String);

fn window_bits(name: &str, value: Option<&str>) -> Result<u8, BadParams> {
    let v = value.ok_or_else(|| BadParams(format!("{name} needs a value")))?;
    // Quoted values are allowed by RFC 7692 section 7.1 (token or quoted-string).
    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
    match v.parse::<u8>() {
        Ok(n) if (8..=15).contains(&n) && !v.starts_with('0') && !v.starts_with('+') => Ok(n),
        _ => Err(BadParams(format!("{name}={v} is not a number from 8 to 15"))),
    }
}

/// Parses the parameters of one element (`permessage-deflate; a; b=1`, name included).
fn parse_params<'a>(mut parts: impl Iterator<Item = &'a str>) -> Result<Params, BadParams> {
    let mut p = Params::default();
    for part in parts.by_ref() {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (part.trim(), None),
        };
        let dup = || BadParams(format!("{name} given twice"));
        let flag = |set: bool| -> Result<bool, BadParams> {
            if value.is_some() {
                return Err(BadParams(format!("{name} takes no value")));
            }
            if set {
                return Err(dup());
            }
            Ok(true)
        };
        match name {
            "server_no_context_takeover" => {
                p.server_no_context_takeover = flag(p.server_no_context_takeover)?
            }
            "client_no_context_takeover" => {
                p.client_no_context_takeover = flag(p.client_no_context_takeover)?
            }
            "server_max_window_bits" => {
                if p.server_max_window_bits.is_some() {
                    return Err(dup());
                }
                p.server_max_window_bits = Some(window_bits(name, value)?);
            }
            "client_max_window_bits" => {
                if p.client_max_window_bits.is_some() {
                    return Err(dup());
                }
                p.client_max_window_bits = Some(match value {
                    None => None,
                    v => Some(window_bits(name, v)?),
                });
            }
            other => return Err(BadParams(format!("unknown parameter `{other}`"))),
        }
    }
    Ok(p)
}

/// The `permessage-deflate` elements of `Sec-WebSocket-Extensions` header values, in order,
/// each parsed (or the reason it cannot be). Other extensions are skipped.
fn elements(values: &[&str]) -> Vec<Result<Params, BadParams>> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            let mut parts = element.split(';');
            let name = parts.next()?.trim();
            name.eq_ignore_ascii_case(NAME).then(|| parse_params(parts))
        })
        .collect()
}

/// A server's answer to a client's offers (the values of every `Sec-WebSocket-Extensions`
/// header of the request): the first acceptable `permessage-deflate` offer, the agreement and
/// the response header value; `None` declines (no offer, or none `config` can meet).
pub fn negotiate(config: &DeflateConfig, offers: &[&str]) -> Option<(Agreement, String)> {
    elements(offers).into_iter().flatten().find_map(|offer| {
        // Our compressor's window: ours, or less if the client asks for less.
        let server_bits = offer
            .server_max_window_bits
            .map_or(config.server_max_window_bits, |n| {
                n.min(config.server_max_window_bits)
            });
        if server_bits < MIN_WINDOW_BITS {
            return None;
        }
        // The client's window: what it offered to limit itself to, or what we ask (only if it
        // said it can be asked).
        let (client_bits, name_client_bits) = match (offer.client_max_window_bits, config.client_max_window_bits) {
            (None, _) => (MAX_WINDOW_BITS, false),
            (Some(offered), Some(ours)) => (ours.min(offered.unwrap_or(MAX_WINDOW_BITS)), true),
            (Some(offered), None) => (offered.unwrap_or(MAX_WINDOW_BITS), offered.is_some()),
        };
        let agreed = Agreement {
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            server_no_context_takeover: offer.server_no_context_takeover
                || config.server_no_context_takeover,
            client_no_context_takeover: config.client_no_context_takeover,
        };
        // server_max_window_bits may be named only when offered (section 7.1.2.1).
        let response = agreed.response(offer.server_max_window_bits.is_some(), name_client_bits);
        Some((agreed, response))
    })
}

/// A client's offer for `config`: `client_max_window_bits` always (we can be asked to use a
/// smaller window), the rest as configured.
pub fn offer(config: &DeflateConfig) -> String {
    let mut s = NAME.to_owned();
    if config.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    if config.server_max_window_bits < MAX_WINDOW_BITS {
        s.push_str(&format!("; server_max_window_bits={}", config.server_max_window_bits));
    }
    match config.client_max_window_bits {
        Some(n) => s.push_str(&format!("; client_max_window_bits={n}")),
        None => s.push_str("; client_max_window_bits"),
    }
    s
}

/// Checks a server's `Sec-WebSocket-Extensions` answer against the client's offer of `config`:
/// `Ok(None)` when the server declined (no `permessage-deflate` in it), the agreement when it
/// accepted, and an error (the client must fail the connection) for an answer the offer did
/// not allow.
pub fn accept_response(config: &DeflateConfig, values: &[&str]) -> Result<Option<Agreement>, BadParams> {
    let mut found = elements(values);
    let Some(first) = found.pop() else {
        return Ok(None);
    };
    if !found.is_empty() {
        return Err(BadParams(format!("{NAME} answered more than once")));
    }
    let p = first?;
    let server_bits = p.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS);
    if server_bits > config.server_max_window_bits {
        return Err(BadParams(format!(
            "server_max_window_bits={server_bits} is more than the {} offered",
            config.server_max_window_bits
        )));
    }
    let client_bits = match p.client_max_window_bits {
        None => config.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
        Some(None) => return Err(BadParams("client_max_window_bits needs a value in a response".into())),
        Some(Some(n)) => n,
    };
    if client_bits > config.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS) {
        return Err(BadParams(format!("client_max_window_bits={client_bits} is more than offered")));
    }
    if config.server_no_context_takeover && !p.server_no_context_takeover {
        return Err(BadParams("server_no_context_takeover was asked for but not answered".into()));
    }
    Ok(Some(Agreement {
        server_max_window_bits: server_bits,
        // zlib cannot compress raw deflate with an 8-bit window; 9 fits what an 8-bit
        // window inflater reads only if the server's inflater is zlib's, which rounds 8 up too.
        client_max_window_bits: client_bits.max(MIN_WINDOW_BITS),
        server_no_context_takeover: p.server_no_context_takeover,
        client_no_context_takeover: p.client_no_context_takeover || config.client_no_context_takeover,
    }))
}

/// Compresses a connection's outgoing messages. See the module docs.
pub struct Deflater {
    z: Compress,
    no_context_takeover: bool,
    out: Vec<u8>,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").field("out", &self.out.capacity()).finish_non_exhaustive()
    }
}

impl Deflater {
    /// A compressor with a `window_bits` window (9-15) at `level` (0-9).
    pub fn new(window_bits: u8, no_context_takeover: bool, level: u32) -> Self {
        let bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        Self {
            z: Compress::new_with_window_bits(Compression::new(level), false, bits),
            no_context_takeover,
            out: Vec::new(),
        }
    }

    /// Compresses one whole message; the compressed payload (sync flush, trailer removed) is
    /// valid until the next call.
    pub fn compress(&mut self, message: &[u8]) -> &[u8] {
        self.out.clear();
        let start = self.z.total_in();
        loop {
            if self.out.capacity() - self.out.len() < 64 {
                // Grows only until the buffer fits the connection's messages.
                self.out.reserve(message.len() / 2 + 256);
            }
            let consumed = (self.z.total_in() - start) as usize;
            self.z
                .compress_vec(&message[consumed..], &mut self.out, FlushCompress::Sync)
                .expect("deflate never fails on valid state");
            let consumed = (self.z.total_in() - start) as usize;
            // A sync flush is complete once all input is taken and output room was left over.
            if consumed == message.len() && self.out.len() < self.out.capacity() {
                break;
            }
        }
        if self.out.ends_with(&TRAILER) {
            self.out.truncate(self.out.len() - TRAILER.len());
        }
        if self.out.is_empty() {
            // zlib writes nothing for a flush with nothing new to flush; the receiver's trailer
            // then needs the empty block's header byte in front (RFC 7692 section 7.2.3.6).
            self.out.push(0x00);
        }
        if self.no_context_takeover {
            self.z.reset();
        }
        &self.out
    }

    /// Bytes of output buffer kept between messages.
    pub fn buffer_capacity(&self) -> usize {
        self.out.capacity()
    }

    /// Frees the output buffer when it grew past `keep` bytes (a rare large message).
    pub fn trim(&mut self, keep: usize) {
        if self.out.capacity() > keep {
            self.out = Vec::new();
        }
    }
}

/// Inflates a connection's incoming compressed messages, bounded by the message size limit.
pub struct Inflater {
    z: Decompress,
    no_context_takeover: bool,
    max_message: usize,
    out: Vec<u8>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").field("out", &self.out.capacity()).finish_non_exhaustive()
    }
}

impl Inflater {
    /// An inflater for a peer compressing with at most `window_bits`, refusing messages that
    /// inflate past `max_message` bytes.
    pub fn new(window_bits: u8, no_context_takeover: bool, max_message: usize) -> Self {
        // flate2 resets a zlib-rs inflater with a window other than 15 bits by building a new
        // one (an allocation per message without context takeover); a 15-bit window inflates
        // any smaller window's stream, so it is used then, at 32 KiB instead of less.
        let bits = if no_context_takeover { MAX_WINDOW_BITS } else { window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS) };
        Self {
            z: Decompress::new_with_window_bits(false, bits),
            no_context_takeover,
            max_message,
            out: Vec::new(),
        }
    }

    /// Starts a new message: forgets the previous one's bytes.
    pub fn begin(&mut self) {
        self.out.clear();
    }

    /// Inflates the next piece of the current message's compressed payload; returns where the
    /// newly inflated bytes start in [`message`](Self::message).
    pub fn feed(&mut self, compressed: &[u8]) -> Result<usize, ProtocolError> {
        let from = self.out.len();
        self.inflate(compressed)?;
        Ok(from)
    }

    /// Ends the current message (puts the sync-flush trailer back); returns where the bytes it
    /// inflated start, as [`feed`](Self::feed).
    pub fn finish(&mut self) -> Result<usize, ProtocolError> {
        let from = self.out.len();
        self.inflate(&TRAILER)?;
        if self.no_context_takeover {
            self.z.reset(false);
        }
        Ok(from)
    }

    /// The current message as inflated so far.
    pub fn message(&self) -> &[u8] {
        &self.out
    }

    /// Bytes of output buffer held now.
    pub fn buffer_capacity(&self) -> usize {
        self.out.capacity()
    }

    /// Frees the output buffer when it grew past `keep` bytes (a rare large message).
    pub fn trim(&mut self, keep: usize) {
        if self.out.capacity() > keep {
            self.out = Vec::new();
        }
    }

    fn inflate(&mut self, input: &[u8]) -> Result<(), ProtocolError> {
        // One byte past the limit is enough to know a message is too large.
        let cap_limit = self.max_message.saturating_add(1);
        let start = self.z.total_in();
        loop {
            if self.out.len() == self.out.capacity() {
                if self.out.len() >= cap_limit {
                    return Err(self.too_large());
                }
                let want = (self.out.capacity() / 2).max(INFLATE_STEP).max(input.len() * 2);
                let room = want.min(cap_limit - self.out.len());
                self.out.reserve_exact(room);
            }
            let consumed = (self.z.total_in() - start) as usize;
            let status = self
                .z
                .decompress_vec(&input[consumed..], &mut self.out, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::BadCompressedData)?;
            if self.out.len() > self.max_message {
                return Err(self.too_large());
            }
            let consumed = (self.z.total_in() - start) as usize;
            if status == Status::StreamEnd {
                // A final block (BFINAL) ends the deflate stream; the next message starts one.
                self.z.reset(false);
                return Ok(());
            }
            if consumed == input.len() && self.out.len() < self.out.capacity() {
                return Ok(());
            }
        }
    }

    fn too_large(&self) -> ProtocolError {
        ProtocolError::TooLarge {
            len: self.out.len() as u64,
            max: self.max_message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(config: &DeflateConfig, offer: &str) -> Option<(Agreement, String)> {
        negotiate(config, &[offer])
    }

    #[test]
    fn the_default_offer_is_accepted_as_it_is() {
        let (a, r) = agree(&DeflateConfig::default(), "permessage-deflate").unwrap();
        assert_eq!(r, "permessage-deflate");
        assert_eq!((a.server_max_window_bits, a.client_max_window_bits), (15, 15));
        assert!(!a.server_no_context_takeover && !a.client_no_context_takeover);
        // A bare client_max_window_bits is only a capability: nothing to answer.
        let (_, r) = agree(&DeflateConfig::default(), "permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(r, "permessage-deflate");
    }

    #[test]
    fn window_requests_are_met_and_answered() {
        let (a, r) = agree(&DeflateConfig::default(), "permessage-deflate; server_max_window_bits=10").unwrap();
        assert_eq!(a.server_max_window_bits, 10);
        assert_eq!(r, "permessage-deflate; server_max_window_bits=10");
        // Our own smaller window wins, and is answered since the offer named the parameter.
        let config = DeflateConfig { server_max_window_bits: 9, ..DeflateConfig::default() };
        let (_, r) = agree(&config, "permessage-deflate; server_max_window_bits=12").unwrap();
        assert_eq!(r, "permessage-deflate; server_max_window_bits=9");
        // ... but never named when the offer did not.
        let (a, r) = agree(&config, "permessage-deflate").unwrap();
        assert_eq!((a.server_max_window_bits, r.as_str()), (9, "permessage-deflate"));
        // Asking the client for a smaller window needs its client_max_window_bits.
        let config = DeflateConfig { client_max_window_bits: Some(10), ..DeflateConfig::default() };
        let (a, r) = agree(&config, "permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!((a.client_max_window_bits, r.as_str()), (10, "permessage-deflate; client_max_window_bits=10"));
        let (a, r) = agree(&config, "permessage-deflate").unwrap();
        assert_eq!((a.client_max_window_bits, r.as_str()), (15, "permessage-deflate"));
        // An 8-bit server window cannot be met by zlib: that offer is declined, the next taken.
        assert_eq!(agree(&DeflateConfig::default(), "permessage-deflate; server_max_window_bits=8"), None);
        let (a, _) = agree(&DeflateConfig::default(), "permessage-deflate; server_max_window_bits=8, permessage-deflate").unwrap();
        assert_eq!(a.server_max_window_bits, 15);
    }

    #[test]
    fn no_context_takeover_is_granted_and_imposed() {
        let (a, r) = agree(&DeflateConfig::default(), "permessage-deflate; server_no_context_takeover").unwrap();
        assert!(a.server_no_context_takeover);
        assert_eq!(r, "permessage-deflate; server_no_context_takeover");
        let config = DeflateConfig { client_no_context_takeover: true, ..DeflateConfig::default() };
        let (a, r) = agree(&config, "permessage-deflate").unwrap();
        assert!(a.client_no_context_takeover);
        assert_eq!(r, "permessage-deflate; client_no_context_takeover");
    }

    #[test]
    fn bad_offers_are_declined_and_others_ignored() {
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(agree(&DeflateConfig::default(), bad), None, "{bad}");
        }
        let (a, _) = agree(&DeflateConfig::default(), "foo, permessage-deflate; server_max_window_bits=\"12\"").unwrap();
        assert_eq!(a.server_max_window_bits, 12);
        assert_eq!(negotiate(&DeflateConfig::default(), &["foo", "PerMessage-Deflate"]).map(|(_, r)| r), Some(NAME.into()));
    }

    #[test]
    fn a_client_checks_the_answer_against_its_offer() {
        let config = DeflateConfig::default();
        assert_eq!(offer(&config), "permessage-deflate; client_max_window_bits");
        assert_eq!(accept_response(&config, &[]), Ok(None));
        assert_eq!(accept_response(&config, &["other"]), Ok(None));
        let a = accept_response(&config, &["permessage-deflate; client_max_window_bits=10; server_no_context_takeover"]).unwrap().unwrap();
        assert_eq!((a.client_max_window_bits, a.server_no_context_takeover), (10, true));
        assert!(accept_response(&config, &["permessage-deflate; client_max_window_bits"]).is_err());
        assert!(accept_response(&config, &["permessage-deflate; bogus"]).is_err());
        assert!(accept_response(&config, &["permessage-deflate", "permessage-deflate"]).is_err());
        let narrow = DeflateConfig { server_max_window_bits: 10, server_no_context_takeover: true, ..config };
        assert_eq!(offer(&narrow), "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits");
        assert!(accept_response(&narrow, &["permessage-deflate; server_no_context_takeover"]).is_err(), "window 15 > 10");
        assert!(accept_response(&narrow, &["permessage-deflate; server_max_window_bits=10"]).is_err(), "context kept");
        // Every answer a server gives to an offer is one the offer's client accepts.
        for (server, client) in [
            (DeflateConfig::default(), narrow),
            (DeflateConfig { client_max_window_bits: Some(9), client_no_context_takeover: true, ..DeflateConfig::default() }, config),
        ] {
            let (agreed, response) = negotiate(&server, &[&offer(&client)]).unwrap();
            assert_eq!(accept_response(&client, &[&response]), Ok(Some(agreed)), "{response}");
        }
    }

    fn round_trip(d: &mut Deflater, i: &mut Inflater, msg: &[u8]) -> Vec<u8> {
        let wire = d.compress(msg).to_vec();
        i.begin();
        // Split the compressed payload as frames would.
        let (a, b) = wire.split_at(wire.len() / 2);
        i.feed(a).unwrap();
        i.feed(b).unwrap();
        i.finish().unwrap();
        i.message().to_vec()
    }

    #[test]
    fn messages_survive_compression_with_and_without_context() {
        let text: Vec<u8> = (0..5000u32).flat_map(|n| format!("{{\"n\":{n}}},").into_bytes()).collect();
        for (bits, nct) in [(15, false), (9, false), (15, true), (9, true)] {
            let mut d = Deflater::new(bits, nct, 6);
            let mut i = Inflater::new(bits, nct, 1 << 20);
            for msg in [&text[..], b"", b"x", &text[..100], &text[..]] {
                assert_eq!(round_trip(&mut d, &mut i, msg), msg, "bits {bits} nct {nct}");
            }
            // Context takeover makes a repeated message cheaper.
            let first = d.compress(&text[..100]).len();
            let again = d.compress(&text[..100]).len();
            assert_eq!(nct, first == again, "bits {bits} nct {nct}: {first} then {again}");
        }
        // RFC 7692 section 7.2.3.1: "Hello" compressed.
        let mut i = Inflater::new(15, false, 100);
        i.begin();
        i.feed(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]).unwrap();
        i.finish().unwrap();
        assert_eq!(i.message(), b"Hello");
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let mut d = Deflater::new(15, false, 9);
        let bomb = d.compress(&vec![0u8; 10 << 20]).to_vec();
        assert!(bomb.len() < 20 << 10, "{}", bomb.len());
        let mut i = Inflater::new(15, false, 1 << 20);
        i.begin();
        let e = i.feed(&bomb).unwrap_err();
        assert!(matches!(e, ProtocolError::TooLarge { max, .. } if max == 1 << 20), "{e:?}");
        assert_eq!(e.close_code(), 1009);
        assert!(i.buffer_capacity() <= (1 << 20) + 1, "{}", i.buffer_capacity());
        // Garbage is a protocol error, not a panic.
        let mut i = Inflater::new(15, false, 1 << 20);
        i.begin();
        assert_eq!(i.feed(&[0xff; 16]), Err(ProtocolError::BadCompressedData));
    }
}
