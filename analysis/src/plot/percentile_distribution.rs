//! Figure `percentile-distribution`: latency by percentile, HdrHistogram style.
//!
//! The x axis is `1/(1-p)` on a log scale, so 90 %, 99 %, 99.9 % ... are evenly spaced and the
//! tail gets as much room as the median. The axis stops at the deepest percentile the data can
//! support (at least 99.99 %, at most 99.9999 %).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{legend_strip, line_width, no_data, series_color, DrawResult, Figure, LegendEntry, LogAxis};
use crate::format;
use crate::series::ConfigSeries;

pub struct PercentileDistribution<'a> {
    /// Every configuration of the run, in manifest order (the order fixes the colours).
    pub configs: &'a [ConfigSeries],
}

/// Decades of `1/(1-p)` to show for `count` messages: one message past the last tick at least.
fn decades_for(count: u64) -> i32 {
    ((count.max(1) as f64).log10().floor() as i32).clamp(4, 6)
}

impl Figure for PercentileDistribution<'_> {
    const NAME: &'static str = "percentile-distribution";
    const TITLE: &'static str = "Latency by percentile";
    const HOW_TO_READ: &'static str = "Latency (log scale) that a given share of messages stayed under, from the whole run (all trials added); \
         the further right, the rarer: a line that bends up early has a heavy tail, and lower is better at every percentile.";

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let shown: Vec<(usize, &ConfigSeries)> = self.configs.iter().enumerate().filter(|(_, c)| !c.distribution.is_empty()).collect();
        let Some(y) = LogAxis::covering(shown.iter().flat_map(|(_, c)| c.distribution.iter().map(|p| p.us))) else {
            return no_data(area, "no latency data: no trial has a readable latency.hlog");
        };
        let decades = decades_for(shown.iter().map(|(_, c)| c.count).max().unwrap_or(0));
        let x_max = 10f64.powi(decades);
        let ticks: Vec<f64> = [1.0, 2.0].into_iter().chain((1..=decades).map(|e| 10f64.powi(e))).collect();

        let entries: Vec<LegendEntry> = shown
            .iter()
            .map(|(i, c)| LegendEntry::line(format!("{} ({} messages)", c.name, format::count(c.count as f64)), series_color(*i, c)))
            .collect();
        let body = legend_strip(area, &entries)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .margin_right(40)
            .x_label_area_size(48)
            .y_label_area_size(84)
            .build_cartesian_2d((1.0..x_max).log_scale().with_key_points(ticks), y.coord())?;
        super::house_mesh(&mut chart)
            .x_desc("percentile (share of messages at or below the latency)")
            .y_desc("latency")
            .x_label_formatter(&|x| format::percentile_at(*x))
            .y_label_formatter(&super::latency_tick)
            .draw()?;
        for (k, (i, c)) in shown.iter().enumerate() {
            let points = c.distribution.iter().filter(|p| p.x <= x_max).map(|p| (p.x, y.clamp(p.us)));
            chart.draw_series(LineSeries::new(points, series_color(*i, c).stroke_width(line_width(k, shown.len()))))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_goes_as_deep_as_the_data() {
        assert_eq!(decades_for(0), 4);
        assert_eq!(decades_for(50_000), 4);
        assert_eq!(decades_for(150_000), 5);
        assert_eq!(decades_for(40_000_000), 6);
    }
}
