//! End to end: `wsbench merge` adds the processes of one load and refuses results that measured
//! different things (the case: a 1 KiB text run and a 32 B binary run), unless forced.

mod common;

use std::fs;
use std::time::Duration;

use common::*;

#[test]
fn merge_refuses_mismatched_results_and_forced_merges_list_the_differences() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&[]);
    let url = server.url();
    let (text_dir, binary_dir, same_dir) = (tmp.path().join("text-1k"), tmp.path().join("binary-32"), tmp.path().join("binary-32-again"));
    for (dir, extra) in [(&text_dir, ["--size", "1KiB", "--text"]), (&binary_dir, ["--size", "32", "--binary"]), (&same_dir, ["--size", "32", "--binary"])] {
        let args = ["--url", &url, "--connections", "2", "--rate", "200", "--duration", "1s", "--warmup", "200ms", "--out", dir.to_str().unwrap()];
        let out = loadgen(&[&args[..], &extra[..]].concat(), Duration::from_secs(30));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let merge = |dirs: &[&std::path::Path], out: &std::path::Path, force: bool| {
        let mut cmd = wsbench();
        cmd.arg("merge").args(dirs).arg("--out").arg(out);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };

    // Refused: exit 2, one line naming every differing key with its values, nothing written.
    let refused = tmp.path().join("refused");
    let out = merge(&[&text_dir, &binary_dir], &refused, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("size: 1024 (") && stderr.contains("32 ("), "{stderr}");
    assert!(stderr.contains("mode: text (") && stderr.contains("binary ("), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(!stderr.contains("rate plan:") && !stderr.contains("engine:"), "only what differs is named: {stderr}");
    assert!(!refused.join("summary.json").exists());

    // The same load measured twice merges without complaint.
    let same = tmp.path().join("same");
    let out = merge(&[&binary_dir, &same_dir], &same, false);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Forced: merged, and the summary's config lists every differing value.
    let forced = tmp.path().join("forced");
    let out = merge(&[&text_dir, &binary_dir], &forced, true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&fs::read_to_string(forced.join("summary.json")).unwrap()).unwrap();
    assert_eq!(doc["config"]["differing"]["size"], serde_json::json!(["1024", "32"]), "{}", doc["config"]);
    assert_eq!(doc["config"]["differing"]["mode"], serde_json::json!(["text", "binary"]));

    // A directory without results is bad input too.
    let out = merge(&[&binary_dir, &tmp.path().join("missing")], &tmp.path().join("x"), false);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
