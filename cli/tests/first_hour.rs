//! End to end: what a new user meets in the first hour — overrides, one configuration, a dry
//! run, the results on standard output (a table or JSON), and clear answers to wrong paths.

mod common;

use std::fs;
use std::path::Path;

use common::*;

const SCENARIO: &str = r#"
name = "first"
trials = 3
[load]
connections = 2
rate = 500
warmup = "300ms"
duration = "10s"
drain_timeout = "1s"
[[configs]]
name = "current-thread"
server = { runtime = "current-thread" }
[[configs]]
name = "multi-thread"
server = { runtime = "multi-thread", workers = 2 }
"#;

fn scenario(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("first.toml");
    fs::write(&path, SCENARIO).unwrap();
    path
}

#[test]
fn a_dry_run_shows_the_plan_with_overrides_and_runs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let out = wsbench()
        .arg("run")
        .arg(scenario(tmp.path()))
        .args(["--dry-run", "--set", "load.rate=2000", "--set", "trials=1", "--config", "multi-thread", "--results"])
        .arg(&results)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 configuration × 1 trial"), "{stdout}");
    assert!(stdout.contains("open loop at 2,000 msgs/s"), "{stdout}");
    assert!(stdout.contains("multi-thread") && !stdout.contains("current-thread runtime"), "{stdout}");
    assert!(stdout.contains("time: at most"), "{stdout}");
    assert!(!results.exists(), "a dry run created {}", results.display());
}

#[test]
fn wrong_overrides_and_names_exit_2_saying_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let path = scenario(tmp.path());
    for (args, says) in [
        (&["--set", "load.rate=fast"][..], "--set load.rate=fast"),
        (&["--set", "load.connections=0"][..], "at least 1"),
        (&["--set", "rate=5"][..], "`rate` cannot be set"),
        (&["--config", "single-thread"][..], "it has: current-thread, multi-thread"),
    ] {
        let out = wsbench().arg("run").arg(&path).args(args).arg("--results").arg(tmp.path().join("r")).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(!tmp.path().join("r").exists());
}

#[test]
fn results_go_to_stdout_as_a_table_or_as_json() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let path = scenario(tmp.path());
    let results = tmp.path().join("results");
    let short = ["--set", "load.duration=1s", "--trials", "1", "--only", "current-thread"];

    let out = wsbench().arg("run").arg(&path).args(short).arg("--results").arg(&results).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("throughput (msgs/s)") && stdout.contains("current-thread"), "{stdout}");
    assert!(!stdout.contains("multi-thread"), "--only ran another configuration: {stdout}");
    // The report's path is the last line, bare, for scripts.
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.ends_with("report.md") && Path::new(last).is_file(), "{stdout}");

    let out = wsbench().arg("run").arg(&path).args(short).args(["--json", "--no-report"]).arg("--results").arg(&results).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["configs"].as_array().unwrap().len(), 1, "{v}");
    let c = &v["configs"][0];
    assert_eq!(c["name"], "current-thread");
    assert!(c["throughput"]["median"].as_f64().unwrap() > 0.0, "{v}");
    assert!(c["p99_us"]["median"].as_f64().unwrap() > 0.0, "{v}");

    // The scenario folder holds two runs now: `report` names them rather than failing vaguely.
    let folder = results.join("first");
    let out = wsbench().arg("report").arg(&folder).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("holds 2 runs"), "{stderr}");
    let run_id = v["run_id"].as_str().unwrap();
    assert!(stderr.contains(run_id), "{stderr}");
    let out = wsbench().arg("report").arg(tmp.path().join("nowhere")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such folder"));
}

#[test]
fn a_foreign_server_runs_beside_its_scenario_and_its_failure_names_the_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("bench");
    fs::create_dir_all(&folder).unwrap();
    // Fails the way Node does: the cause first, then a long stack, then noise at the end.
    let noise: String = (0..12).map(|i| format!("echo '    at frame {i}' >&2\n")).collect();
    fs::write(
        folder.join("server.sh"),
        format!("#!/bin/sh\nif [ ! -f ./app.js ]; then echo \"Error: Cannot find module '$PWD/app.js'\" >&2\n{noise}echo '  requireStack: []' >&2\necho '}}' >&2\nexit 1\nfi\n"),
    )
    .unwrap();
    let scenario = folder.join("s.toml");
    fs::write(&scenario, "name = \"foreign\"\n[server]\ncommand = [\"sh\", \"./server.sh\", \"{port}\"]\nready_timeout = \"5s\"\n[load]\nduration = \"1s\"\n").unwrap();
    // Started from elsewhere: `./server.sh` is found beside the scenario.
    let out = wsbench().current_dir(tmp.path()).arg("run").arg(&scenario).arg("--results").arg(tmp.path().join("r")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Cannot find module") && stderr.contains("bench/app.js"), "{stderr}");
    assert!(stderr.contains("requireStack"), "{stderr}");
}
