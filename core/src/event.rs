//! Readiness lines a process prints on stdout, one JSON object per line.
//!
//! The orchestrator reads the server's first stdout line to learn its address; anything else a
//! process wants to say goes to stderr, so that line stays machine-readable.

use serde::{Deserialize, Serialize};

/// `{"event":"listening","addr":"127.0.0.1:PORT","pid":N}`, printed once the server accepts connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listening {
    pub event: String,
    pub addr: String,
    pub pid: u32,
}

impl Listening {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self { event: "listening".into(), addr: addr.to_string(), pid: std::process::id() }
    }

    /// The one line to print, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings serializes")
    }

    /// Parses a line printed by [`Listening::to_line`]; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        let ev: Self = serde_json::from_str(line.trim()).ok()?;
        (ev.event == "listening").then_some(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_the_documented_shape() {
        let ev = Listening { event: "listening".into(), addr: "127.0.0.1:9001".into(), pid: 42 };
        assert_eq!(ev.to_line(), r#"{"event":"listening","addr":"127.0.0.1:9001","pid":42}"#);
        assert_eq!(Listening::parse(&ev.to_line()), Some(ev));
        assert_eq!(Listening::parse(r#"{"event":"other","addr":"x","pid":1}"#), None);
        assert_eq!(Listening::parse("not json"), None);
    }
}
