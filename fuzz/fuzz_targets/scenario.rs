//! The scenario loader: any text never panics; an error points inside the file; a scenario
//! that loads keeps every result folder it names inside the results folder.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use wsbench_core::layout;
use wsbench_core::scenario::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Scenario::parse(Path::new("fuzz.toml"), text) {
        Ok(s) => {
            assert_eq!(layout::check_name(&s.name), Ok(()));
            let results = Path::new("results");
            let run = layout::run_dir(results, &s.name, "run");
            assert_eq!(run.components().count(), 3, "{}", run.display());
            for c in &s.configs {
                let trial = layout::trial_dir(&run, &c.name, 1);
                assert!(trial.starts_with(&run) && trial.components().count() == 5, "{}", trial.display());
                assert!(trial.components().all(|p| matches!(p, Component::Normal(_))), "{}", trial.display());
            }
        }
        Err(e) => {
            if let Some((line, col)) = e.line {
                assert!(line >= 1 && line <= text.lines().count() + 1 && col >= 1, "{e}");
            }
            let _ = e.to_string();
        }
    }
});
