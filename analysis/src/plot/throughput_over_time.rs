//! Figure `throughput-over-time`: echoes received per second, one line per configuration.
//!
//! The line is the median over trials of each second; the light band behind it spans the
//! slowest to the fastest trial, so run-to-run noise is visible next to the differences.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{legend_strip, no_data, series_color, BandChart, DrawResult, Figure, LegendEntry};
use crate::format;
use crate::series::ConfigSeries;

pub struct ThroughputOverTime<'a> {
    /// Every configuration of the run, in manifest order (the order fixes the colours).
    pub configs: &'a [ConfigSeries],
}

impl Figure for ThroughputOverTime<'_> {
    const NAME: &'static str = "throughput-over-time";
    const TITLE: &'static str = "Throughput over time";
    const HOW_TO_READ: &'static str = "Echoes received per second (from intervals.csv): the line is the median over trials, the band the range from the slowest to the fastest trial; \
         dips that line up with latency spikes are stalls, a slow drift is the server or the load generator running out of something.";

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let shown: Vec<(usize, &ConfigSeries)> = self.configs.iter().enumerate().filter(|(_, c)| !c.throughput.is_empty()).collect();
        if shown.is_empty() {
            return no_data(area, "no throughput data: no trial has a readable intervals.csv");
        }
        let entries: Vec<LegendEntry> = shown.iter().map(|(i, c)| LegendEntry::line(c.name.clone(), series_color(*i, c))).collect();
        let body = legend_strip(area, &entries)?;
        BandChart {
            caption: None,
            x_desc: "time since the measured window began (s)",
            y_desc: "messages received per second",
            y_tick: &|v| format::rate_tick(*v),
            series: shown.iter().map(|(i, c)| (series_color(*i, c), c.throughput.as_slice())).collect(),
            max_t: shown.iter().flat_map(|(_, c)| c.throughput.iter().map(|p| p.t_s)).fold(0.0, f64::max),
            marks: super::shared_marks(shown.iter().map(|(_, c)| *c)),
        }
        .draw(&body.margin(0, 4, 6, 10))
    }
}
