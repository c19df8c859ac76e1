//! The gate as users meet it, with the real `wsbench` binary on 127.0.0.1: `wsbench token`
//! prints a token that opens a `wsbench server --token-secret` and only for its path, the load
//! generator mints its own per connection on both engines (and without them every connection
//! fails, counted as HTTP 401), and connections over `--conn-rate`'s burst fail as HTTP 429,
//! counted, and change the exit code.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::{loadgen, serial, summary, wsbench, Server};

const LIMIT: Duration = Duration::from_secs(60);
const ENGINES: [&str; 2] = ["zero-alloc", "tungstenite"];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsbench-cli-gate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn secret(dir: &Path) -> PathBuf {
    let path = dir.join("secret");
    std::fs::write(&path, "cli gate test secret of some length\n").unwrap();
    path
}

/// A short closed-loop load of `connections` on `url`, written to `out`.
fn load(url: &str, connections: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--url", url, "--connections", connections, "--duration", "1s", "--warmup", "0s", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    loadgen(&args, LIMIT)
}

#[test]
fn a_printed_token_opens_its_path_only() {
    let _turn = serial();
    let dir = scratch("token");
    let secret = secret(&dir);
    let server = Server::start(&["--token-secret", secret.to_str().unwrap()]);
    let printed = |path: &str| {
        let out = wsbench().args(["token", "--secret", secret.to_str().unwrap(), "--ttl", "2m", "--path", path]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let token = printed("/");
    let (expiry, mac) = token.split_once('.').expect("<expiry>.<mac>");
    let now = wsbench_core::token::unix_seconds(std::time::SystemTime::now());
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 100..=now + 121).contains(&expiry), "{expiry} against now {now}");
    assert_eq!(mac.len(), 43);

    let out = load(&format!("ws://{}/?token={token}", server.addr), "2", &dir.join("ok"), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&dir.join("ok")).connections.established, 2);

    // A token for another path is refused there: a forgery, 403.
    let other = printed("/room/1");
    let out = load(&format!("ws://{}/?token={other}", server.addr), "2", &dir.join("other"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let s = summary(&dir.join("other"));
    assert_eq!(s.connections.failures.get("HTTP status 403"), Some(&2), "{:?}", s.connections);

    for (args, says) in [
        (vec!["--secret", "/nonexistent/secret"], "cannot read"),
        (vec!["--secret", secret.to_str().unwrap(), "--path", "room"], "--path"),
        (vec!["--secret", secret.to_str().unwrap(), "--ttl", "0s"], "--ttl"),
    ] {
        let out = wsbench().arg("token").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{args:?}");
        assert!(out.stdout.is_empty());
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_load_generator_mints_a_token_per_connection_on_both_engines() {
    let _turn = serial();
    let dir = scratch("mint");
    let secret = secret(&dir);
    let server = Server::start(&["--token-secret", secret.to_str().unwrap()]);
    for engine in ENGINES {
        let out_dir = dir.join(engine);
        let out = load(&server.url(), "4", &out_dir, &["--engine", engine, "--token-secret", secret.to_str().unwrap()]);
        assert!(out.status.success(), "{engine}: {}", String::from_utf8_lossy(&out.stderr));
        let s = summary(&out_dir);
        assert_eq!((s.connections.established, s.connections.failed), (4, 0), "{engine}");
        assert!(s.messages.received > 0, "{engine}");
        // The file is named in the results, its contents are not.
        let text = std::fs::read_to_string(out_dir.join("summary.json")).unwrap();
        assert!(text.contains("\"token_secret\""), "{engine}");
        assert!(!text.contains("cli gate test secret"), "{engine}");

        // Without a token every connection fails, is counted by cause, and the run fails.
        let bare_dir = dir.join(format!("{engine}-bare"));
        let out = load(&server.url(), "3", &bare_dir, &["--engine", engine]);
        assert_eq!(out.status.code(), Some(1), "{engine}");
        let s = summary(&bare_dir);
        assert_eq!(s.connections.failures.get("HTTP status 401"), Some(&3), "{engine}: {:?}", s.connections);
    }
    // A secret file that cannot be used is bad input.
    let out = load(&server.url(), "1", &dir.join("bad"), &["--token-secret", "/nonexistent/secret"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn connections_past_the_burst_fail_as_429_and_are_counted() {
    let _turn = serial();
    let dir = scratch("rate");
    let server = Server::start(&["--conn-rate", "1/min", "--conn-burst", "5"]);
    let out = load(&server.url(), "8", &dir, &["--max-failed-connections", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&dir);
    assert_eq!((s.connections.established, s.connections.failed), (5, 3), "{:?}", s.connections);
    assert_eq!(s.connections.failures.get("HTTP status 429"), Some(&3), "{:?}", s.connections);
    // One more than allowed fails the run.
    let again = dir.join("again");
    let out = load(&server.url(), "2", &again, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(summary(&again).connections.failures.get("HTTP status 429"), Some(&2));
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_scenario_with_tokens_runs_with_a_throwaway_secret_on_both_engines() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("scenario.toml");
    std::fs::write(
        &scenario,
        r#"
name = "tokens"
trials = 1
[server]
tokens = true
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
    )
    .unwrap();
    let results = tmp.path().join("results");
    let out = wsbench().arg("run").arg(&scenario).arg("--results").arg(&results).arg("--no-report").output().unwrap();
    assert!(out.status.success(), "wsbench run failed: {}", String::from_utf8_lossy(&out.stderr));
    let run = std::fs::read_dir(results.join("tokens")).unwrap().next().unwrap().unwrap().path();
    for config in ["tungstenite", "zero-alloc"] {
        let dir = run.join(config).join("trial-1");
        let s = summary(&dir);
        assert_eq!((s.connections.established, s.connections.failed), (3, 0), "{config}");
        assert!(s.messages.received > 0, "{config}");
        let server = common::json(&dir.join("server.json"));
        // The server asked for tokens, and every connection brought a good one.
        assert!(server["config"]["gate"]["token_secret"].as_str().unwrap().ends_with("token-secret"), "{server}");
        for cause in ["refused_token_missing", "refused_token_forged", "refused_token_expired"] {
            assert_eq!(server["limits_reached"][cause], 0, "{config} {cause}");
        }
        assert_eq!(server["counts"]["connections_accepted"], 3, "{config}");
    }
}
