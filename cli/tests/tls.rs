//! `tls = true` end to end, and the per-connection setup times of an ordinary run, as a user
//! reads them: summary.json, and interval logs decoded by HdrHistogram's own Python reader.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn write_scenario(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("scenario.toml");
    fs::write(&p, text).unwrap();
    p
}

fn only_run_dir(results: &Path, scenario: &str) -> PathBuf {
    let mut runs: Vec<_> = fs::read_dir(results.join(scenario)).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.pop().unwrap()
}

#[test]
fn a_tls_run_completes_on_both_engines_checking_the_certificate() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        tmp.path(),
        r#"
name = "tls"
trials = 1
[server]
tls = true
[load]
connections = 3
in_flight = 1
warmup = "200ms"
duration = "1s"
drain_timeout = "1s"
[[configs]]
name = "tungstenite"
server = { engine = "tungstenite" }
load = { engine = "tungstenite" }
[[configs]]
name = "zero-alloc"
server = { engine = "zero-alloc" }
load = { engine = "zero-alloc" }
"#,
    );
    let results = tmp.path().join("results");
    let out = wsbench().arg("run").arg(&scenario).arg("--results").arg(&results).arg("--no-report").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wsbench run failed: {stderr}");
    let run = only_run_dir(&results, "tls");
    for config in ["tungstenite", "zero-alloc"] {
        let dir = run.join(config).join("trial-1");
        let s = summary(&dir);
        assert!(s.config.url.starts_with("wss://127.0.0.1:"), "{}", s.config.url);
        assert!(s.messages.received > 100 && s.messages.errors == 0, "{config}: {:?}", s.messages);
        let tls = s.setup.tls.as_ref().expect("a wss:// run says how it trusted the server");
        assert_eq!((tls.trust.as_str(), tls.insecure), ("ca", false), "the throwaway CA, not --insecure");
        assert_eq!(s.setup.tls_us.map(|t| t.count), Some(3), "{config}");
        for f in ["tls-ca.pem", "tls-cert.pem", "tls-key.pem", "tls.hlog"] {
            assert!(dir.join(f).is_file(), "{config} lacks {f}");
        }
        let server = json(&dir.join("server.json"));
        assert!(server["config"]["tls"]["cert"].as_str().unwrap().ends_with("tls-cert.pem"), "{server}");
        assert_eq!(server["limits_reached"]["tls_failures"], 0);
        if config == "zero-alloc" {
            // rustls allocates one buffer per record it encrypts and one per record it decrypts:
            // with one message in flight that is 2 per message on each side, and nothing more
            // may come from our side of the transport.
            let loadgen = s.worker_allocations_per_message.unwrap();
            let served = server["allocations_per_message"].as_f64().unwrap();
            assert!(loadgen <= 2.05 && served <= 2.05, "allocations per message under TLS: loadgen {loadgen}, server {served}");
        }
    }
}

#[test]
fn a_plain_run_records_setup_times_that_hdrhistograms_reader_decodes() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(
        tmp.path(),
        r#"
name = "setup"
trials = 1
[load]
connections = 5
processes = 2                   # merged: setup times add up over processes
in_flight = 1
warmup = "200ms"
duration = "1s"
[[configs]]
name = "plain"
[[configs]]
name = "zero"
server = { engine = "zero-alloc" }
load = { engine = "zero-alloc" }
"#,
    );
    let results = tmp.path().join("results");
    let out = wsbench().arg("run").arg(&scenario).arg("--results").arg(&results).output().unwrap();
    assert!(out.status.success(), "wsbench run failed: {}", String::from_utf8_lossy(&out.stderr));
    let run = only_run_dir(&results, "setup");
    // The report has a setup table without a TLS column; compare knows the setup metrics.
    let md = fs::read_to_string(run.join("report").join("report.md")).unwrap();
    assert!(md.contains("| TCP connect") || md.contains("TCP connect |"), "{md}");
    assert!(md.contains("WebSocket handshake") && md.contains("first message"), "{md}");
    assert!(!md.contains("| TLS handshake"), "no TLS column without TLS: {md}");
    let out = wsbench().arg("compare").arg(&run).args(["--baseline", "plain", "--format", "json"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<String> = v.to_string().match_indices("\"metric\":\"").map(|(i, m)| v.to_string()[i + m.len()..].split('"').next().unwrap().to_owned()).collect();
    for k in ["connect", "handshake", "first-message"] {
        assert!(keys.iter().any(|m| m == k), "compare lacks {k}: {keys:?}");
    }
    assert!(!keys.iter().any(|m| m == "tls"), "nothing measured TLS: {keys:?}");
    let dir = run.join("plain").join("trial-1");
    let s = summary(&dir);
    assert!(s.setup.tls.is_none() && s.setup.tls_us.is_none(), "no TLS, no TLS times");
    assert!(!dir.join("tls.hlog").exists());
    let v = json(&dir.join("summary.json"));
    let mut logs = Vec::new();
    for (key, log) in [("connect_us", "connect.hlog"), ("handshake_us", "handshake.hlog"), ("first_message_us", "first_message.hlog")] {
        let block = &v[key];
        assert_eq!(block["count"], 5, "{key}: {block}");
        for p in ["p50", "p90", "p99", "max"] {
            assert!(block[p].as_f64().unwrap() > 0.0, "{key}.{p}: {block}");
        }
        logs.push((dir.join(log), block["count"].as_u64().unwrap()));
    }
    // Where Python cannot, harness's `hdrhistogram_python_reader_checks_our_logs` shows as ignored.
    #[cfg(python_hdrh)]
    {
        let py = python_with_hdrh().expect("the build found Python with hdrh, the test did not: run `cargo clean -p wsbench`");
        let paths: Vec<PathBuf> = logs.iter().map(|(p, _)| p.clone()).collect();
        let decoded = python_hlog_summary(&py, &paths);
        for (log, count) in &logs {
            let d = &decoded[log.to_str().unwrap()];
            assert_eq!(d["count"].as_u64(), Some(*count), "{}: {d}", log.display());
            assert_eq!(d["intervals"].as_u64(), Some(1), "{d}");
        }
    }
}
