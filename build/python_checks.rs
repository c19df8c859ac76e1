//! Finds out whether the Python checks of the end-to-end tests can run on this machine, so that a
//! test that cannot run is listed as `ignored`, with its reason, in `cargo test`'s own output
//! instead of passing without checking anything. The build script of every package whose tests
//! use Python (`build = "../build/python_checks.rs"`).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(python_hdrh)");
    println!("cargo::rustc-check-cfg=cfg(python_websockets)");
    println!("cargo::rerun-if-changed=../build/python_checks.rs");
    println!("cargo::rerun-if-env-changed=WSBENCH_PYTHON");
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
