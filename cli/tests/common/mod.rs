//! Helpers for the end-to-end tests: start the real `wsbench` binary as users do and read what
//! they would read. Every wait is bounded.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use wsbench_core::event::Listening;
use wsbench_core::result::LoadgenSummary;

/// Tests that measure take turns: on a 2-core machine two runs at once would measure each other.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn wsbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wsbench"))
}

/// A server process on 127.0.0.1 with an OS-chosen port; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(extra: &[&str]) -> Self {
        let mut cmd = wsbench();
        cmd.args(["server", "--listen", "127.0.0.1:0"]).args(extra);
        Self::spawn(cmd)
    }

    /// Starts `cmd`, any server that prints wsbench's listening line first on stdout (ours, or
    /// a foreign one in scripts/), and waits for that line (at most 10 s).
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start the server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("the server printed its listening line").unwrap().unwrap();
        let ev = Listening::parse(&line).unwrap_or_else(|| panic!("not a listening line: {line}"));
        assert_eq!(ev.pid, child.id());
        Self { child, addr: ev.addr }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits at most `limit` for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_for(&mut self.child, limit)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Runs `wsbench run SCENARIO --results RESULTS --run-id r1 EXTRA...` to completion (bounded).
pub fn run_r1(scenario: &Path, results: &Path, extra: &[&str], limit: Duration) -> Output {
    let mut child = wsbench()
        .arg("run")
        .arg(scenario)
        .arg("--results")
        .arg(results)
        .args(["--run-id", "r1"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if wait_for(&mut child, limit).is_none() {
        let _ = child.kill();
        panic!("wsbench run {} did not finish within {limit:?}", scenario.display());
    }
    child.wait_with_output().unwrap()
}

/// Runs `wsbench loadgen` to completion (bounded) and returns its output.
pub fn loadgen(args: &[&str], limit: Duration) -> Output {
    let mut child = wsbench().arg("loadgen").args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if wait_for(&mut child, limit).is_none() {
        let _ = child.kill();
        panic!("loadgen did not finish within {limit:?}");
    }
    child.wait_with_output().unwrap()
}

pub fn summary(dir: &Path) -> LoadgenSummary {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The Python interpreter with HdrHistogram's `hdrh` package: `WSBENCH_PYTHON` or `python3`.
/// `None` when it cannot import `hdrh` — an error under CI, where `.ci/run` installs it.
pub fn python_with_hdrh() -> Option<String> {
    python_with("hdrh", "hdrhistogram", "the HdrHistogram Python check")
}

/// The Python interpreter with the `websockets` package (scripts/fixed_rate_server.py), found and
/// required like [`python_with_hdrh`].
pub fn python_with_websockets() -> Option<String> {
    python_with("websockets", "websockets", "the capacity search against a foreign server")
}

/// `WSBENCH_PYTHON` or `python3` when it can import `module`; otherwise `None` with a printed
/// reason, or a failure under CI (`CI` set), where `.ci/run` installs `package`.
fn python_with(module: &str, package: &str, what: &str) -> Option<String> {
    let py = std::env::var("WSBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py).args(["-c", &format!("import {module}")]).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
    if ok {
        return Some(py);
    }
    assert!(std::env::var_os("CI").is_none(), "CI must provide Python with the {package} package (set WSBENCH_PYTHON)");
    eprintln!("skipping {what}: `{py}` cannot import {module} (pip install {package})");
    None
}

/// Decodes interval logs with HdrHistogram's Python reader (scripts/hlog_summary.py).
pub fn python_hlog_summary(py: &str, logs: &[PathBuf]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/hlog_summary.py");
    let out = Command::new(py).arg(script).args(logs).output().unwrap();
    assert!(out.status.success(), "hlog_summary.py failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
