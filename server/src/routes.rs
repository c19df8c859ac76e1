//! The side routes next to the WebSocket endpoint: `/healthz`, `/metrics` and `/client`.
//!
//! `/healthz` says the process accepts and answers; `/metrics` is the Prometheus text exposition
//! format (version 0.0.4) of [`crate::metrics::Metrics`], so any scraper can watch a run;
//! `/client` is a self-contained page whose script connects back and times round trips. This
//! module only renders answers; reading requests is `http`'s business.

use std::fmt::Write as _;

use crate::metrics::Snapshot;

/// Body of a `/healthz` answer.
pub const HEALTH_BODY: &str = "ok\n";

/// Content type of a `/metrics` answer.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Content type of the `/client` page.
pub const CLIENT_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The browser page, without external assets; `{{TOKEN}}` is where a token goes.
const CLIENT_PAGE: &str = include_str!("client.html");

/// The `/client` page, carrying `token` for its upgrade when the server asks for tokens.
pub fn client_page(token: Option<&str>) -> String {
    // A token is digits, a dot and base64url: nothing in it can end the script's string.
    CLIENT_PAGE.replace("{{TOKEN}}", token.unwrap_or(""))
}

/// Kind of a Prometheus metric.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// Renders `s` in the Prometheus text format, one `# HELP` and `# TYPE` line per metric.
pub fn metrics_text(s: &Snapshot) -> String {
    let metrics: [(&str, Kind, &str, u64); 25] = [
        (
            "wsbench_server_connections_open",
            Kind::Gauge,
            "WebSocket connections open now.",
            s.connections_open,
        ),
        (
            "wsbench_server_connections_peak",
            Kind::Gauge,
            "Most WebSocket connections open at once.",
            s.connections_peak,
        ),
        (
            "wsbench_server_connections_accepted_total",
            Kind::Counter,
            "WebSocket connections accepted (handshake answered).",
            s.connections_accepted,
        ),
        (
            "wsbench_server_messages_received_total",
            Kind::Counter,
            "Text and binary messages received.",
            s.messages_in,
        ),
        (
            "wsbench_server_messages_sent_total",
            Kind::Counter,
            "Text and binary messages sent.",
            s.messages_out,
        ),
        (
            "wsbench_server_bytes_received_total",
            Kind::Counter,
            "Payload bytes of the messages received.",
            s.bytes_in,
        ),
        (
            "wsbench_server_bytes_sent_total",
            Kind::Counter,
            "Payload bytes of the messages sent.",
            s.bytes_out,
        ),
        (
            "wsbench_server_protocol_errors_total",
            Kind::Counter,
            "Connections closed for a WebSocket protocol violation or an oversized message.",
            s.protocol_errors,
        ),
        (
            "wsbench_server_pauses_total",
            Kind::Counter,
            "Emulated stop-the-world pauses.",
            s.pauses,
        ),
        (
            "wsbench_server_sockets_open",
            Kind::Gauge,
            "Accepted sockets served now, pending handshakes included (bounded by --max-connections).",
            s.sockets_open,
        ),
        (
            "wsbench_server_buffered_bytes",
            Kind::Gauge,
            "Bytes of partially received messages held now, and large-message buffers kept between messages (bounded by --max-buffered).",
            s.buffered_bytes,
        ),
        (
            "wsbench_server_sockets_parked",
            Kind::Gauge,
            "Sockets waiting without a task now: pending handshakes and quiet zero-alloc connections.",
            s.parked,
        ),
        (
            "wsbench_server_refused_busy_total",
            Kind::Counter,
            "Sockets answered HTTP 503 because --max-connections were served.",
            s.refused_busy,
        ),
        (
            "wsbench_server_handshake_timeouts_total",
            Kind::Counter,
            "Sockets that sent no complete request head within the handshake timeout.",
            s.handshake_timeouts,
        ),
        (
            "wsbench_server_tls_failures_total",
            Kind::Counter,
            "Sockets whose TLS handshake failed.",
            s.tls_failures,
        ),
        (
            "wsbench_server_closed_over_budget_total",
            Kind::Counter,
            "Connections closed with 1008 because --max-buffered was spent.",
            s.over_budget,
        ),
        (
            "wsbench_server_closed_read_timeout_total",
            Kind::Counter,
            "Connections closed with 1008: half a message, then no input for --read-timeout.",
            s.read_timeouts,
        ),
        (
            "wsbench_server_closed_pong_timeout_total",
            Kind::Counter,
            "Connections dropped (1011): pinged, then no input for --pong-timeout.",
            s.pong_timeouts,
        ),
        (
            "wsbench_server_closed_slow_consumer_total",
            Kind::Counter,
            "Connections closed with 1008 for leaving more than --max-write-buffer unread.",
            s.slow_consumers,
        ),
        (
            "wsbench_server_close_timeouts_total",
            Kind::Counter,
            "Closing handshakes the peer did not finish within --close-timeout.",
            s.close_timeouts,
        ),
        (
            "wsbench_server_refused_origin_total",
            Kind::Counter,
            "WebSocket upgrades answered 403: Origin not among --allow-origin.",
            s.refused_origin,
        ),
        (
            "wsbench_server_refused_token_missing_total",
            Kind::Counter,
            "WebSocket upgrades answered 401: no token (--token-secret).",
            s.refused_token_missing,
        ),
        (
            "wsbench_server_refused_token_forged_total",
            Kind::Counter,
            "WebSocket upgrades answered 403: token malformed or not signed with --token-secret.",
            s.refused_token_forged,
        ),
        (
            "wsbench_server_refused_token_expired_total",
            Kind::Counter,
            "WebSocket upgrades answered 401: genuine token past its expiry.",
            s.refused_token_expired,
        ),
        (
            "wsbench_server_refused_rate_total",
            Kind::Counter,
            "WebSocket upgrades answered 429: over the peer's --conn-rate after --conn-burst.",
            s.refused_rate,
        ),
    ];
    let mut out = String::with_capacity(2048);
    for (name, kind, help, value) in metrics {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_page_is_self_contained_and_carries_its_token() {
        let page = client_page(Some("123.abc_-"));
        assert!(page.contains("const TOKEN = \"123.abc_-\";"));
        assert!(client_page(None).contains("const TOKEN = \"\";"));
        // No external assets: nothing is fetched from elsewhere.
        for outside in ["src=", "href=", "http://", "https://", "@import"] {
            assert!(!page.contains(outside), "the page refers to {outside}");
        }
    }

    #[test]
    fn every_metric_has_help_type_and_one_sample() {
        let s = Snapshot {
            connections_open: 3,
            messages_in: 42,
            pauses: 7,
            ..Snapshot::default()
        };
        let text = metrics_text(&s);
        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() % 3, 0);
        for chunk in lines.chunks(3) {
            let name = chunk[2].split(' ').next().unwrap();
            assert!(name.starts_with("wsbench_server_"), "{name}");
            assert!(
                chunk[0].starts_with(&format!("# HELP {name} ")),
                "{chunk:?}"
            );
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            assert_eq!(chunk[1], format!("# TYPE {name} {kind}"));
            let value = chunk[2].split(' ').nth(1).unwrap();
            assert!(value.parse::<u64>().is_ok(), "{chunk:?}");
        }
        for needed in [
            "wsbench_server_connections_open 3",
            "wsbench_server_connections_accepted_total 0",
            "wsbench_server_messages_received_total 42",
            "wsbench_server_messages_sent_total 0",
            "wsbench_server_bytes_received_total 0",
            "wsbench_server_bytes_sent_total 0",
            "wsbench_server_protocol_errors_total 0",
            "wsbench_server_pauses_total 7",
            "wsbench_server_buffered_bytes 0",
            "wsbench_server_sockets_parked 0",
            "wsbench_server_closed_over_budget_total 0",
            "wsbench_server_closed_read_timeout_total 0",
            "wsbench_server_closed_pong_timeout_total 0",
            "wsbench_server_closed_slow_consumer_total 0",
            "wsbench_server_refused_busy_total 0",
            "wsbench_server_refused_origin_total 0",
            "wsbench_server_refused_token_missing_total 0",
            "wsbench_server_refused_token_forged_total 0",
            "wsbench_server_refused_token_expired_total 0",
            "wsbench_server_refused_rate_total 0",
        ] {
            assert!(lines.contains(&needed), "missing {needed:?} in\n{text}");
        }
    }
}
