//! Fabricates a demo run and writes its report, to look at the figures without running a benchmark.
//!
//! ```text
//! cargo run -p wsbench-analysis --example demo_report -- /tmp/analysis-demo
//! ```
//! The run lands in `<dir>/run`, its report in `<dir>/run/report`, and the PNGs are copied to `<dir>`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp/analysis-demo"));
    let run = common::fabricate(&out.join("run"), &common::default_shapes());
    let paths = wsbench_analysis::report(&run.dir)?;
    for f in &paths.figures {
        let to = out.join(f.png.file_name().expect("figures have file names"));
        std::fs::copy(&f.png, &to)?;
        println!("{}", to.display());
    }
    println!("{}", paths.report_md.display());
    Ok(())
}
