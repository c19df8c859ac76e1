//! TLS and subprotocols as a foreign client sees them: the Python `websockets` package
//! (scripts/foreign/ws_client.py) against the real `wsbench-server` binary, on both engines,
//! with a certificate issued here by a throwaway CA that the client is told to trust.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ServerProcess;

struct TlsFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A CA and a certificate it issued for 127.0.0.1 and localhost, as PEM files in `dir`.
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
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.ca, ca.pem()).unwrap();
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `WSBENCH_PYTHON` or `python3` when it has `websockets`; required under CI.
fn python() -> Option<String> {
    let py = std::env::var("WSBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import websockets"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must provide Python with the websockets package (set WSBENCH_PYTHON)"
    );
    eprintln!("skipping: `{py}` cannot import websockets (pip install websockets)");
    None
}

/// Runs ws_client.py (bounded: it stops after `--seconds`, and is killed after 30 s) and
/// returns its JSON line, or its stderr when it failed.
async fn python_client(py: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/foreign/ws_client.py");
    let run = tokio::process::Command::new(py)
        .arg(script)
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("ws_client.py ends in time")
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test]
#[cfg_attr(not(python_websockets), ignore = "Python cannot import websockets, which this check needs (pip install websockets==17.4; set WSBENCH_PYTHON)")]
async fn a_python_client_talks_to_both_engines_over_tls() {
    let py = python().expect("the build found Python with websockets, the test did not: run `cargo clean -p wsbench-loadgen -p wsbench-server`");
    let files = tls_files(&temp_dir("tls"));
    let (cert, key, ca) = (
        files.cert.to_str().unwrap(),
        files.key.to_str().unwrap(),
        files.ca.to_str().unwrap(),
    );
    for engine in ["tungstenite", "zero-alloc"] {
        let server =
            ServerProcess::start(&["--engine", engine, "--tls-cert", cert, "--tls-key", key])
                .await;
        let url = format!("wss://127.0.0.1:{}/", server.addr.port());
        let v = python_client(
            &py,
            &["--url", &url, "--ca", ca, "--connections", "4", "--seconds", "1"],
        )
        .await
        .unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert!(v["messages"].as_u64().unwrap() > 100, "{engine}: {v}");
        // A client that does not trust the certificate fails, and the server counts it.
        let plain = format!("ws://127.0.0.1:{}/", server.addr.port());
        let refused = python_client(&py, &["--url", &url, "--connections", "1", "--seconds", "0.1"])
            .await
            .unwrap_err();
        assert!(refused.contains("CERTIFICATE_VERIFY_FAILED"), "{engine}: {refused}");
        // Plain HTTP on a TLS port is no TLS handshake either.
        assert!(
            python_client(&py, &["--url", &plain, "--connections", "1", "--seconds", "0.1"])
                .await
                .is_err()
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let failures = loop {
            let n = tls_metric(&server, ca).await;
            if n >= 2 || tokio::time::Instant::now() > deadline {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(failures, 2, "{engine}");
    }
}

/// `wsbench_server_tls_failures_total`, read over TLS with the Python client's trust.
async fn tls_metric(server: &ServerProcess, ca: &str) -> u64 {
    let py = python().unwrap();
    let code = format!(
        "import ssl,urllib.request;c=ssl.create_default_context(cafile={ca:?});\
         t=urllib.request.urlopen('https://127.0.0.1:{}/metrics',context=c,timeout=5).read().decode();\
         print([l.split()[1] for l in t.splitlines() if l.startswith('wsbench_server_tls_failures_total ')][0])",
        server.addr.port()
    );
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(py).args(["-c", &code]).kill_on_drop(true).output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test]
#[cfg_attr(not(python_websockets), ignore = "Python cannot import websockets, which this check needs (pip install websockets==17.4; set WSBENCH_PYTHON)")]
async fn the_server_picks_the_first_offered_subprotocol_it_speaks() {
    let py = python().expect("the build found Python with websockets, the test did not: run `cargo clean -p wsbench-loadgen -p wsbench-server`");
    for engine in ["tungstenite", "zero-alloc"] {
        let server = ServerProcess::start(&[
            "--engine",
            engine,
            "--subprotocols",
            "chat,superchat",
        ])
        .await;
        let url = format!("ws://127.0.0.1:{}/", server.addr.port());
        let run = |offer: &'static str| {
            let (py, url) = (py.clone(), url.clone());
            async move {
                python_client(
                    &py,
                    &["--url", &url, "--subprotocol", offer, "--connections", "1", "--seconds", "0.2"],
                )
                .await
            }
        };
        assert_eq!(run("superchat,chat").await.unwrap()["subprotocol"], "superchat");
        assert_eq!(run("other,chat").await.unwrap()["subprotocol"], "chat");
        assert!(run("other").await.unwrap()["subprotocol"].is_null(), "none fits: none chosen");

        let strict = ServerProcess::start(&[
            "--engine",
            engine,
            "--subprotocols",
            "chat",
            "--require-subprotocol",
        ])
        .await;
        let url = format!("ws://127.0.0.1:{}/", strict.addr.port());
        let refused = python_client(
            &py,
            &["--url", &url, "--subprotocol", "other", "--connections", "1", "--seconds", "0.2"],
        )
        .await
        .unwrap_err();
        assert!(refused.contains("400"), "{engine}: {refused}");
    }
}

#[tokio::test]
async fn unusable_tls_files_are_a_usage_error() {
    let dir = temp_dir("tls-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not pem\n").unwrap();
    let out = tokio::process::Command::new(common::BIN)
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&junk)
        .arg("--tls-key")
        .arg(&junk)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), out)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no certificate"), "{stderr}");
}
