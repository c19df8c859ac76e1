//! Finds out whether the Python checks of the end-to-end tests can run on this machine, so that a
//! test that cannot run is listed as `ignored`, with its reason, in `cargo test`'s own output
//! instead of passing without checking anything. The build script of every package whose tests
//! use Python (`build = "../build/python_checks.rs"`). It also looks for headless Chromium, which
//! drives the server's browser page; under CI (`CI` set) that test always runs, so a missing
//! browser fails it instead of hiding as `ignored`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(python_hdrh)");
    println!("cargo::rustc-check-cfg=cfg(python_websockets)");
    println!("cargo::rerun-if-changed=../build/python_checks.rs");
    println!("cargo::rerun-if-env-changed=WSBENCH_PYTHON");
    println!("cargo::rustc-check-cfg=cfg(chromium)");
    println!("cargo::rerun-if-env-changed=WSBENCH_CHROMIUM");
    println!("cargo::rerun-if-env-changed=CI");
    // Installing a browser with apt adds to /usr/bin, which runs this again.
    if Path::new("/usr/bin").is_dir() {
        println!("cargo::rerun-if-changed=/usr/bin");
    }
    let chromium = std::env::var_os("WSBENCH_CHROMIUM").is_some()
        || ["/usr/bin/chromium-headless-shell", "/usr/lib/chromium/chromium-headless-shell"]
            .iter()
            .any(|p| Path::new(p).exists());
    if chromium || std::env::var_os("CI").is_some() {
        println!("cargo::rustc-cfg=chromium");
    }
    let py = std::env::var("WSBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let imports = |module: &str| Command::new(&py).args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success());
    for (module, cfg) in [("hdrh", "python_hdrh"), ("websockets", "python_websockets")] {
        if imports(module) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    // Installing a package into the interpreter's site-packages runs this again.
    if let Ok(out) = Command::new(&py).args(["-c", "import site; print('\\n'.join(site.getsitepackages()))"]).output() {
        for dir in String::from_utf8_lossy(&out.stdout).lines().filter(|d| Path::new(d).is_dir()) {
            println!("cargo::rerun-if-changed={dir}");
        }
    }
}
