//! Figure `server-resources`: the server's CPU and resident memory over time, from `processes.csv`.
//!
//! Two panels on one time axis: CPU in % of one core (above 100 % means more than one core),
//! memory in MiB. Lines are medians over trials, bands the range between trials.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{legend_strip, no_data, series_color, BandChart, DrawResult, Figure, LegendEntry};
use crate::series::ConfigSeries;

pub struct ServerResources<'a> {
    /// Every configuration of the run, in manifest order (the order fixes the colours).
    pub configs: &'a [ConfigSeries],
}

const X_DESC: &str = "time since the trial's processes started (s), connecting and warm-up included";

impl Figure for ServerResources<'_> {
    const NAME: &'static str = "server-resources";
    const TITLE: &'static str = "Server CPU and memory";
    const HOW_TO_READ: &'static str = "Server CPU (% of one core, sampled from /proc every second) and resident memory; the time axis starts with the processes, so it includes connecting and warm-up. \
         CPU near 100 % per runtime thread means the server is the bottleneck; memory that keeps climbing is a leak or an unbounded buffer.";

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let shown: Vec<(usize, &ConfigSeries)> =
            self.configs.iter().enumerate().filter(|(_, c)| !c.server_cpu_pct.is_empty() || !c.server_rss_mib.is_empty()).collect();
        if shown.is_empty() {
            return no_data(area, "no server samples: no trial has server rows in processes.csv");
        }
        let entries: Vec<LegendEntry> = shown.iter().map(|(i, c)| LegendEntry::line(c.name.clone(), series_color(*i, c))).collect();
        let body = legend_strip(area, &entries)?;
        let max_t = shown.iter().flat_map(|(_, c)| c.server_cpu_pct.iter().chain(&c.server_rss_mib).map(|p| p.t_s)).fold(0.0, f64::max);
        let panels = body.margin(0, 4, 6, 10).split_evenly((2, 1));
        BandChart {
            caption: Some("CPU"),
            x_desc: "",
            y_desc: "CPU (% of one core)",
            y_tick: &|v| format!("{v:.0} %"),
            series: shown.iter().map(|(i, c)| (series_color(*i, c), c.server_cpu_pct.as_slice())).collect(),
            max_t,
            // processes.csv counts from the trial's start, not the window's: no stage marks.
            marks: Vec::new(),
        }
        .draw(&panels[0])?;
        BandChart {
            caption: Some("resident memory"),
            x_desc: X_DESC,
            y_desc: "RSS (MiB)",
            y_tick: &|v| crate::format::sig3(*v),
            series: shown.iter().map(|(i, c)| (series_color(*i, c), c.server_rss_mib.as_slice())).collect(),
            max_t,
            // processes.csv counts from the trial's start, not the window's: no stage marks.
            marks: Vec::new(),
        }
        .draw(&panels[1])
    }
}
