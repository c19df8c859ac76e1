//! Figure `latency-cdf`: the share of messages at or below each latency, one line per
//! configuration.
//!
//! The familiar reading of a distribution: where a line crosses 50 % is the median, how far right
//! it still climbs near 100 % is the tail. Latency is on a log scale, so a body at 50 µs and a
//! pause at 100 ms fit one axis; the percentile-distribution figure is the one that magnifies
//! the last percent.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{legend_strip, line_width, no_data, series_color, DrawResult, Figure, LegendEntry, LogAxis};
use crate::series::ConfigSeries;

pub struct LatencyCdf<'a> {
    /// Every configuration of the run, in manifest order (the order fixes the colours).
    pub configs: &'a [ConfigSeries],
}

impl Figure for LatencyCdf<'_> {
    const NAME: &'static str = "latency-cdf";
    const TITLE: &'static str = "Latency distribution (CDF)";
    const HOW_TO_READ: &'static str = "Share of messages (all trials added) whose latency was at or below each value, latency on a log scale: \
         a line further left is faster, a steep line is consistent, and a line that flattens below 100 % and creeps right has a tail \
         (the share where it flattens is the share of messages that were delayed).";

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let shown: Vec<(usize, &ConfigSeries)> = self.configs.iter().enumerate().filter(|(_, c)| !c.cdf.is_empty()).collect();
        let Some(x) = LogAxis::covering(shown.iter().flat_map(|(_, c)| c.cdf.iter().map(|p| p.us))) else {
            return no_data(area, "no latency data: no trial has a readable latency.hlog");
        };
        let entries: Vec<LegendEntry> = shown.iter().map(|(i, c)| LegendEntry::line(c.name.clone(), series_color(*i, c))).collect();
        let body = legend_strip(area, &entries)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .margin_right(40)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(x.coord(), 0.0..100.0)?;
        super::house_mesh(&mut chart)
            .x_desc("latency")
            .y_desc("messages at or below (%)")
            .x_label_formatter(&super::latency_tick)
            .y_label_formatter(&|v| format!("{v:.0} %"))
            .y_labels(11)
            .max_light_lines(1)
            .draw()?;
        for (k, (i, c)) in shown.iter().enumerate() {
            // A vertical rise from 0 % at the fastest message makes the start of each line readable.
            let first = c.cdf[0];
            let points = std::iter::once((x.clamp(first.us), 0.0)).chain(c.cdf.iter().map(|p| (x.clamp(p.us), p.percent)));
            chart.draw_series(LineSeries::new(points, series_color(*i, c).stroke_width(line_width(k, shown.len()))))?;
        }
        Ok(())
    }
}
