//! Fabricates demo runs and writes their reports, to look at the figures without running a
//! benchmark: a plain run of two configurations, a rate sweep with a knee, and a capacity search.
//!
//! ```text
//! cargo run -p wsbench-analysis --example demo_report -- /tmp/analysis-demo
//! ```
//! The runs land in `<dir>/run`, `<dir>/sweep` and `<dir>/search`, each with its report in
//! `report/`; the PNGs are copied to `<dir>` (prefixed `sweep-` and `search-` for the latter two).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp/analysis-demo"));
    let runs = [
        ("", common::fabricate(&out.join("run"), &common::default_shapes()).dir),
        ("sweep-", common::fabricate_sweep(&out.join("sweep")).dir),
        ("search-", common::fabricate_search(&out.join("search")).run.dir),
    ];
    for (prefix, dir) in runs {
        write_report(&dir, &out, prefix)?;
    }
    Ok(())
}

fn write_report(run: &Path, out: &Path, prefix: &str) -> Result<(), Box<dyn std::error::Error>> {
    let paths = wsbench_analysis::report(run)?;
    for f in &paths.figures {
        let name = f.png.file_name().expect("figures have file names").to_string_lossy();
        let to = out.join(format!("{prefix}{name}"));
        std::fs::copy(&f.png, &to)?;
        println!("{}", to.display());
    }
    println!("{}", paths.report_md.display());
    Ok(())
}
