//! `wsbench run` stays inside its bounds: a `kill -9` of it leaves no process behind (server,
//! load generators, an external server's own children), and names that would lead out of the
//! results folder are refused with exit 2 before anything is written.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A process as seen once: its pid and start time, so a reused pid is not taken for it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    pid: u32,
    start: u64,
    cmdline: String,
}

fn stat_fields(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of proc(5), starttime field 22.
    Some((f.first()?.chars().next()?, f.get(19)?.parse().ok()?))
}

fn seen(pid: u32) -> Option<Seen> {
    let (_, start) = stat_fields(pid)?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" ");
    Some(Seen { pid, start, cmdline })
}

/// Alive: the same process (same start time) exists and is not a zombie waiting to be reaped.
fn alive(p: &Seen) -> bool {
    matches!(stat_fields(p.pid), Some((state, start)) if start == p.start && state != 'Z')
}

/// Every descendant of `pid`, from /proc/<pid>/task/<tid>/children.
fn descendants(pid: u32) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for t in tasks.flatten() {
            let children = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
                if let Some(s) = seen(c) {
                    out.push(s);
                    todo.push(c);
                }
            }
        }
    }
    out
}

/// Starts `wsbench run` on `scenario` and waits (bounded) until its descendants include every
/// process whose command line contains one of `expect`.
fn start_run_and_wait_for(tmp: &Path, scenario: &str, expect: &[&str]) -> (Child, Vec<Seen>) {
    let path = tmp.join("long.toml");
    fs::write(&path, scenario).unwrap();
    let mut run = wsbench()
        .args(["run", "--no-report", "--results"])
        .arg(tmp.join("results"))
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let procs = descendants(run.id());
        if expect.iter().all(|e| procs.iter().any(|p| p.cmdline.contains(e))) {
            return (run, procs);
        }
        if let Ok(Some(st)) = run.try_wait() {
            panic!("wsbench run exited with {st} before its children were up");
        }
        if Instant::now() > end {
            let _ = run.kill();
            panic!("children {expect:?} not all up within 30 s: {procs:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kill -9`s `run` and polls until none of `procs` is alive; returns how long that took.
fn kill_and_time(mut run: Child, procs: &[Seen]) -> Duration {
    run.kill().unwrap(); // SIGKILL: no code of wsbench runs.
    let killed = Instant::now();
    let _ = run.wait();
    let limit = Duration::from_secs(5);
    loop {
        let left: Vec<&Seen> = procs.iter().filter(|p| alive(p)).collect();
        if left.is_empty() {
            return killed.elapsed();
        }
        if killed.elapsed() > limit {
            for p in &left {
                // SAFETY: kill(2); the test cleans up after a failure.
                unsafe { libc::kill(p.pid as i32, libc::SIGKILL) };
            }
            panic!("still alive {limit:?} after kill -9 of wsbench run: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

const LONG: &str = r#"
name = "long"
[load]
connections = 2
rate = 100
duration = "120s"
"#;

#[test]
fn kill_9_of_wsbench_run_leaves_no_child() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = format!("{LONG}\n[[configs]]\nname = \"builtin\"\nload = {{ processes = 2 }}\n");
    let (run, procs) = start_run_and_wait_for(tmp.path(), &scenario, &[" server ", "/loadgen-0", "/loadgen-1", " watch-groups"]);
    let took = kill_and_time(run, &procs);
    eprintln!("kill -9: all {} processes of the run were gone after {took:?}", procs.len());
}

#[test]
fn kill_9_takes_an_external_servers_own_children_along() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    // A shell that leaves a child of its own behind and becomes the server: the kind of
    // process tree `npm start` makes. The `sleep` does not inherit PDEATHSIG; its group dies.
    let exe = env!("CARGO_BIN_EXE_wsbench");
    let scenario = format!(
        "{LONG}\n[[configs]]\nname = \"external\"\nserver = {{ command = [\"sh\", \"-c\", \"sleep 300 & exec \\\"$0\\\" server --listen 127.0.0.1:{{port}}\", \"{exe}\"] }}\n"
    );
    let (run, procs) = start_run_and_wait_for(tmp.path(), &scenario, &["sleep 300", " server ", " loadgen "]);
    let took = kill_and_time(run, &procs);
    eprintln!("kill -9: all {} processes of the run (with the server's own child) were gone after {took:?}", procs.len());
}

#[test]
fn ctrl_c_ends_the_trial_with_its_files_and_leaves_no_child() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = format!("{LONG}\n[[configs]]\nname = \"builtin\"\n");
    let (mut run, procs) = start_run_and_wait_for(tmp.path(), &scenario, &[" server ", " loadgen "]);
    std::thread::sleep(Duration::from_millis(500));
    // Only wsbench gets it: its children are in their own process groups, so it passes the
    // interruption on and the trial still writes its files.
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(run.id() as i32, libc::SIGINT) };
    let status = wait_for(&mut run, Duration::from_secs(20)).expect("wsbench run exits after Ctrl-C");
    assert_eq!(status.code(), Some(1), "an interrupted run is not a success");
    let trial = fs::read_dir(tmp.path().join("results/long")).unwrap().next().unwrap().unwrap().path().join("builtin/trial-1");
    let s = summary(&trial);
    assert!(!s.complete && s.reason.as_deref().unwrap_or("").contains("SIGINT"), "{:?}", s.reason);
    assert!(trial.join("server.json").is_file(), "the server was stopped gracefully and wrote its summary");
    // The watchdog leaves when it sees the orchestrator gone, which on a busy machine can take
    // a moment after `wsbench run` has exited: the promise is gone within a second.
    let gone_by = Instant::now() + Duration::from_secs(1);
    let left = loop {
        let left: Vec<&Seen> = procs.iter().filter(|p| alive(p)).collect();
        if left.is_empty() || Instant::now() > gone_by {
            break left;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(left.is_empty(), "left behind 1 s after Ctrl-C: {left:?}");
}

#[test]
fn a_normal_run_leaves_no_child() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("short.toml");
    let exe = env!("CARGO_BIN_EXE_wsbench");
    // The server's own child must go at the end of the trial too, not only on kill -9.
    fs::write(
        &path,
        format!(
            "name = \"short\"\n[load]\nconnections = 1\nrate = 100\nduration = \"1s\"\nwarmup = \"0s\"\ndrain_timeout = \"1s\"\n\
             [[configs]]\nname = \"external\"\nserver = {{ command = [\"sh\", \"-c\", \"sleep 301 & exec \\\"$0\\\" server --listen 127.0.0.1:{{port}}\", \"{exe}\"] }}\n"
        ),
    )
    .unwrap();
    let out = wsbench().args(["run", "--no-report", "--results"]).arg(tmp.path().join("results")).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Our own `sleep 301`, if any survived, is now a child of init: look for it by command line
    // and by its environment-independent marker.
    let survivors: Vec<Seen> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(seen)
        .filter(|p| p.cmdline == "sleep 301" && alive(p))
        .collect();
    assert!(survivors.is_empty(), "left behind after a normal run: {survivors:?}");
}

fn run_with(tmp: &Path, scenario: &str, extra: &[&str]) -> std::process::Output {
    let path = tmp.join("s.toml");
    fs::write(&path, scenario).unwrap();
    wsbench().args(["run", "--no-report", "--results"]).arg(tmp.join("results")).arg(&path).args(extra).output().unwrap()
}

#[test]
fn names_that_leave_the_results_folder_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = "name = \"s\"\n[[configs]]\nname = \"a\"\n";
    for bad in ["x/../../../tmp/evil", "..", ".", "/tmp/evil", ""] {
        let out = run_with(tmp.path(), ok, &["--run-id", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--run-id {bad:?}: {stderr}");
        assert!(stderr.contains("--run-id") && stderr.contains(&format!("{:?}", bad)), "--run-id {bad:?}: {stderr}");
    }
    // In the scenario file: file, line and key.
    for (text, line, key) in [
        ("name = \"../evil\"\n", 1, "name"),
        ("name = \"s\"\n[[configs]]\nname = \"a/../../b\"\n", 3, "configs.name"),
        ("name = \"s\"\n[[configs]]\nname = \"..\"\n", 3, "configs.name"),
        ("name = \"\"\n", 1, "name"),
    ] {
        let out = run_with(tmp.path(), text, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {stderr}");
        assert!(stderr.contains(&format!("s.toml:{line}:")) && stderr.contains(key), "{text:?}: {stderr}");
    }
    // Nothing was written anywhere: not even the results folder.
    assert!(!tmp.path().join("results").exists());
}
