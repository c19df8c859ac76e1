//! wss:// against a foreign server: the Python `websockets` package over TLS
//! (scripts/foreign/wss_echo.py), with a certificate made here by a throwaway CA. Both client
//! engines, trusting the CA (`--ca`), trusting nothing (`--insecure`), and trusting only the
//! system's roots, which must refuse the connection with its cause.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{out_dir, read_results, run_loadgen, serial};
use wsbench_core::warning::WarningKind;

/// A CA and a server certificate it issued for 127.0.0.1 and localhost, as PEM files.
struct TlsFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn tls_files(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Names of their own: a leaf named like its issuer looks self-signed to OpenSSL.
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params.distinguished_name.push(DnType::CommonName, "wsbench test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    let files = TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    std::fs::write(&files.ca, ca.pem()).unwrap();
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

/// `WSBENCH_PYTHON` or `python3` when it has `websockets`; required under CI.
fn python() -> Option<String> {
    let py = std::env::var("WSBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py).args(["-c", "import websockets"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    assert!(std::env::var_os("CI").is_none(), "CI must provide Python with the websockets package (set WSBENCH_PYTHON)");
    eprintln!("skipping: `{py}` cannot import websockets (pip install websockets)");
    None
}

/// The Python wss:// echo server, killed when dropped.
struct PythonServer {
    child: Child,
    port: u16,
}

impl PythonServer {
    fn start(py: &str, files: &TlsFiles, extra: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/foreign/wss_echo.py");
        let mut child = Command::new(py)
            .arg(script)
            .args(["--cert", files.cert.to_str().unwrap(), "--key", files.key.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // One line, {"port": N}, once it listens; a server that dies ends the read with nothing.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("wss_echo.py said {line:?}: {e}"));
        Self { child, port: v["port"].as_u64().unwrap() as u16 }
    }

    fn url(&self) -> String {
        format!("wss://127.0.0.1:{}/", self.port)
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LIMIT: Duration = Duration::from_secs(30);

#[test]
#[cfg_attr(not(python_websockets), ignore = "Python cannot import websockets, which this check needs (pip install websockets==17.4; set WSBENCH_PYTHON)")]
fn both_engines_measure_a_foreign_wss_server_with_ca_and_insecure() {
    let _serial = serial();
    let py = python().expect("the build found Python with websockets, the test did not: run `cargo clean -p wsbench-loadgen -p wsbench-server`");
    let files = tls_files(&out_dir("tls-files"));
    let server = PythonServer::start(&py, &files, &[]);
    let url = server.url();
    let ca = files.ca.to_str().unwrap();
    for engine in ["tungstenite", "zero-alloc"] {
        for trust in [&["--ca", ca][..], &["--insecure"][..]] {
            let dir = out_dir(&format!("tls-{engine}-{}", trust[0].trim_start_matches('-')));
            let mut args = vec!["--url", &url, "--engine", engine, "--connections", "3", "--duration", "1s", "--warmup", "200ms", "--out", dir.to_str().unwrap()];
            args.extend_from_slice(trust);
            let (status, _, stderr) = run_loadgen(&args, LIMIT);
            assert_eq!(status.code(), Some(0), "{engine} {trust:?}: {stderr}");
            let r = read_results(&dir);
            r.assert_consistent();
            let s = &r.summary;
            assert!(s.messages.received > 100, "{engine} {trust:?}: {:?}", s.messages);
            assert_eq!((s.messages.corrupted, s.messages.lost), (0, 0));
            let tls = s.setup.tls.as_ref().expect("a wss:// run records how it trusted the server");
            let insecure = trust[0] == "--insecure";
            assert_eq!(tls.insecure, insecure);
            assert_eq!(tls.trust, if insecure { "insecure" } else { "ca" });
            assert_eq!(s.warnings.iter().any(|w| w.kind == WarningKind::TlsInsecure), insecure, "{:?}", s.warnings);
            assert_eq!(stderr.contains("warning: --insecure"), insecure, "{stderr}");
            // Every connection's TLS handshake was timed, and each step took some time.
            for (what, t) in [("connect", &s.setup.connect_us), ("tls", &s.setup.tls_us), ("handshake", &s.setup.handshake_us), ("first message", &s.setup.first_message_us)] {
                let t = t.unwrap_or_else(|| panic!("{engine}: no {what} times"));
                assert_eq!(t.count, 3, "{engine} {what}");
                assert!(t.min > 0.0, "{engine} {what}: {t:?}");
            }
        }
    }
}

#[test]
#[cfg_attr(not(python_websockets), ignore = "Python cannot import websockets, which this check needs (pip install websockets==17.4; set WSBENCH_PYTHON)")]
fn a_private_ca_is_refused_without_ca_or_insecure() {
    let _serial = serial();
    let py = python().expect("the build found Python with websockets, the test did not: run `cargo clean -p wsbench-loadgen -p wsbench-server`");
    let files = tls_files(&out_dir("tls-refused-files"));
    let server = PythonServer::start(&py, &files, &[]);
    let url = server.url();
    for engine in ["tungstenite", "zero-alloc"] {
        let dir = out_dir(&format!("tls-refused-{engine}"));
        let (status, _, stderr) = run_loadgen(&["--url", &url, "--engine", engine, "--connections", "2", "--duration", "1s", "--warmup", "0s", "--out", dir.to_str().unwrap()], LIMIT);
        // Without system roots at all the plan is refused up front (2); with them the CA is
        // unknown and every connection fails (1). Either way the remedy is named.
        match status.code() {
            Some(1) => {
                let s = read_results(&dir).summary;
                assert_eq!(s.connections.failed, 2, "{stderr}");
                assert!(s.connections.failures.keys().all(|c| c.starts_with("TLS error")), "{:?}", s.connections.failures);
            }
            Some(2) => {}
            other => panic!("{engine}: exit {other:?}: {stderr}"),
        }
        assert!(stderr.contains("--ca"), "{engine}: {stderr}");
    }
}

#[test]
#[cfg_attr(not(python_websockets), ignore = "Python cannot import websockets, which this check needs (pip install websockets==17.4; set WSBENCH_PYTHON)")]
fn headers_reach_the_server_unrecorded_and_its_subprotocol_choice_is_recorded() {
    let _serial = serial();
    let py = python().expect("the build found Python with websockets, the test did not: run `cargo clean -p wsbench-loadgen -p wsbench-server`");
    let files = tls_files(&out_dir("tls-header-files"));
    let server = PythonServer::start(&py, &files, &["--require-header", "Authorization: Bearer s3cret", "--subprotocols", "chat,superchat"]);
    let url = server.url();
    let ca = files.ca.to_str().unwrap();
    for engine in ["tungstenite", "zero-alloc"] {
        let dir = out_dir(&format!("tls-header-{engine}"));
        let common = ["--url", &url, "--ca", ca, "--engine", engine, "--connections", "2", "--duration", "500ms", "--warmup", "0s", "--out", dir.to_str().unwrap()];
        // From the environment: the secret never shows on the command line.
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_wsbench-loadgen"))
            .args(common)
            .args(["--subprotocol", "superchat,chat", "--header", "X-Trace: 7"])
            .env("WSBENCH_HEADERS", "Authorization: Bearer s3cret")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (status, _, stderr) = common::wait(child, LIMIT);
        assert_eq!(status.code(), Some(0), "{engine}: {stderr}");
        let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
        assert!(!text.contains("s3cret") && !text.contains("X-Trace: 7"), "{engine}: a header value reached the results:\n{text}");
        let s = read_results(&dir).summary;
        assert_eq!(s.config.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect::<Vec<_>>(), ["X-Trace: <redacted>", "Authorization: <redacted>"]);
        let chosen: Vec<_> = s.setup.subprotocols.iter().map(|(p, n)| (p.as_str(), *n)).collect();
        assert_eq!(chosen.len(), 1, "{engine}: {chosen:?}");
        assert!(["chat", "superchat"].contains(&chosen[0].0) && chosen[0].1 == 2, "{engine}: one of ours, on both connections: {chosen:?}");

        // Without the header the server refuses, and the refusal is named.
        let (status, _, stderr) = run_loadgen(&common, LIMIT);
        assert_eq!(status.code(), Some(1), "{engine}: {stderr}");
        let s = read_results(&dir).summary;
        assert_eq!(s.connections.failures.get("HTTP status 401"), Some(&2), "{engine}: {:?}", s.connections.failures);
    }
}

#[test]
fn bad_ca_files_and_tls_flags_on_ws_urls_are_usage_errors() {
    let dir = out_dir("tls-usage");
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "no certificate here\n").unwrap();
    let (status, _, stderr) = run_loadgen(&["--url", "wss://127.0.0.1:9/", "--ca", junk.to_str().unwrap(), "--duration", "1s"], LIMIT);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no certificate"), "{stderr}");
    let (status, _, stderr) = run_loadgen(&["--url", "ws://127.0.0.1:9/", "--insecure", "--duration", "1s"], LIMIT);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("wss://"), "{stderr}");
}

/// TLS decrypts in user space, so its records carry no kernel stamps: `--rx-timestamps kernel`
/// on wss:// keeps today's timing, and summary.json says so.
#[test]
#[cfg_attr(not(python_websockets), ignore = "Python cannot import websockets, which this check needs (pip install websockets==17.4; set WSBENCH_PYTHON)")]
fn kernel_receive_stamps_fall_back_on_wss_and_say_why() {
    let _serial = serial();
    let py = python().expect("the build found Python with websockets, the test did not: run `cargo clean -p wsbench-loadgen -p wsbench-server`");
    let files = tls_files(&out_dir("tls-files-rx"));
    let server = PythonServer::start(&py, &files, &[]);
    let url = server.url();
    let dir = out_dir("tls-zero-kernel-stamps");
    let args = ["--url", &url, "--engine", "zero-alloc", "--connections", "3", "--rate", "600", "--rx-timestamps", "kernel", "--insecure", "--duration", "1s", "--warmup", "200ms", "--out", dir.to_str().unwrap()];
    let (status, _, stderr) = run_loadgen(&args, LIMIT);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let s = read_results(&dir).summary;
    assert!(s.messages.received > 100, "{:?}", s.messages);
    let rx = s.rx_timestamps.expect("asked for, so reported");
    assert_eq!((rx.kernel_connections, rx.user_connections, rx.kernel_echoes), (0, 3, 0), "{rx:?}");
    assert!(rx.fallback.as_deref().is_some_and(|f| f.contains("wss://")), "{rx:?}");
}
