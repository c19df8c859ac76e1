//! End to end: permessage-deflate and gatekeeping as scenario keys, through `wsbench run` and
//! the binaries it starts on 127.0.0.1, checked in the files and report a user reads.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// Runs `wsbench run SCENARIO --results DIR --run-id r1 EXTRA...` within 120 s.
fn run(scenario: &Path, results: &Path, extra: &[&str]) -> std::process::Output {
    let mut child = wsbench()
        .arg("run")
        .arg(scenario)
        .arg("--results")
        .arg(results)
        .args(["--run-id", "r1"])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if wait_for(&mut child, Duration::from_secs(120)).is_none() {
        let _ = child.kill();
        panic!("wsbench run {} did not finish within 120 s", scenario.display());
    }
    child.wait_with_output().unwrap()
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[test]
fn an_origin_the_server_does_not_allow_fails_its_trial_with_403_counted() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("gated.toml");
    fs::write(
        &scenario,
        "name = \"gated\"\n[server]\nallow_origin = [\"https://a.example\"]\nconn_rate = 1000\nconn_burst = 50\n\
         [load]\nconnections = 3\nin_flight = 1\nwarmup = \"200ms\"\nduration = \"1s\"\n\
         [[configs]]\nname = \"allowed\"\nload = { origin = \"https://a.example\" }\n\
         [[configs]]\nname = \"foreign\"\nload = { origin = \"https://evil.example\" }\n",
    )
    .unwrap();
    let results = tmp.path().join("results");
    let out = run(&scenario, &results, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "one trial must fail: {stderr}");
    let dir = results.join("gated/r1");
    let ok = summary(&dir.join("allowed/trial-1"));
    assert!(ok.passed() && ok.connections.established == 3, "{:?}", ok.connections);
    let refused = summary(&dir.join("foreign/trial-1"));
    assert_eq!(refused.connections.failures.get("HTTP status 403"), Some(&3), "{:?}", refused.connections);
    let server = json(&dir.join("foreign/trial-1/server.json"));
    assert_eq!(server["limits_reached"]["refused_origin"], 3, "{server}");
    assert_eq!(server["config"]["gate"]["allow_origins"][0], "https://a.example");
    assert_eq!(server["config"]["gate"]["conn_burst"], 50);
    assert!(stderr.contains("foreign"), "the failed configuration is named: {stderr}");
}

#[test]
fn deflate_on_a_tungstenite_engine_is_a_scenario_error_naming_key_and_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let out = wsbench()
        .arg("run")
        .arg(repo_file("scenarios/deflate.toml"))
        .args(["--dry-run", "--set", "load.engine=tungstenite", "--results"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("config `deflate`: load key `deflate` needs load key `engine = \"zero-alloc\"`"), "{stderr}");
    assert!(stderr.contains("deflate.toml:"), "the file is named: {stderr}");
}
