//! Figure `latency-over-time`: p50, p99, p99.9 and max of each second, one line per configuration.
//!
//! Four small panels share one log-scale latency axis, so a line's height means the same in each
//! and a pause that lifts only the tail (p99.9, max) stands out against a flat median.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{legend_strip, line_width, no_data, series_color, text, DrawResult, Figure, LegendEntry, LogAxis};
use crate::series::{ConfigSeries, LatencyPoint};

pub struct LatencyOverTime<'a> {
    /// Every configuration of the run, in manifest order (the order fixes the colours).
    pub configs: &'a [ConfigSeries],
}

type Pick = fn(&LatencyPoint) -> f64;

const PANELS: [(&str, Pick); 4] = [("p50 (median)", |p| p.p50), ("p99", |p| p.p99), ("p99.9", |p| p.p99_9), ("max", |p| p.max)];

impl Figure for LatencyOverTime<'_> {
    const NAME: &'static str = "latency-over-time";
    const TITLE: &'static str = "Latency per interval";
    const HOW_TO_READ: &'static str =
        "Each panel is one percentile of every histogram interval (1 s unless the scenario sets `interval`; all trials of a configuration added together), on the same log scale: \
         flat lines are steady latency; spikes that appear in p99.9 and max but not in p50 are pauses (GC, scheduling, TCP) that hit a few messages.";

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let shown: Vec<(usize, &ConfigSeries)> = self.configs.iter().enumerate().filter(|(_, c)| !c.latency.is_empty()).collect();
        let axis = LogAxis::covering(shown.iter().flat_map(|(_, c)| c.latency.iter().flat_map(|p| PANELS.map(|(_, f)| f(p)))));
        let Some(axis) = axis else {
            return no_data(area, "no latency data: no trial has a readable latency.hlog");
        };
        

        let marks = super::shared_marks(shown.iter().map(|(_, c)| *c));
        let silent: Vec<Vec<(f64, f64)>> = shown.iter().map(|(_, c)| super::silent_spans(c)).collect();
        let ends = shown.iter().flat_map(|(_, c)| c.latency.iter().map(|p| p.t_s)).chain(silent.iter().flatten().map(|s| s.1));
        let max_t = ends.fold(0.0, f64::max);
        let mut entries: Vec<LegendEntry> = shown.iter().map(|(i, c)| LegendEntry::line(c.name.clone(), series_color(*i, c))).collect();
        if silent.iter().any(|s| !s.is_empty()) {
            entries.push(LegendEntry::styled("no reply in the interval (shaded)", super::SILENT, super::Stroke::None, super::Marker::Square));
        }
        if !marks.is_empty() {
            entries.push(LegendEntry::line("stage boundary", RGBColor(90, 90, 90)));
        }
        let body = legend_strip(area, &entries)?;
        let panels = body.margin(0, 4, 6, 6).split_evenly((2, 2));
        for (k, (panel, (label, pick))) in panels.iter().zip(PANELS).enumerate() {
            let (left, bottom) = (k % 2 == 0, k >= 2);
            let mut chart = ChartBuilder::on(panel)
                .caption(label, text(17))
                .margin(6)
                .margin_right(24)
                .x_label_area_size(if bottom { 42 } else { 26 })
                .y_label_area_size(76)
                .build_cartesian_2d(super::time_axis(max_t), axis.coord())?;
            super::house_mesh(&mut chart)
                .x_desc(if bottom { "time since the measured window began (s)" } else { "" })
                .y_desc(if left { "latency" } else { "" })
                .x_label_formatter(&super::seconds_tick)
                .y_label_formatter(&super::latency_tick)
                .x_labels(8)
                .max_light_lines(1)
                .draw()?;
            // An interval with no reply has no percentile: shaded, and the line breaks there, so a
            // stall never reads as a ramp from the interval before it to the one after.
            for spans in &silent {
                chart.draw_series(spans.iter().map(|&(a, b)| Rectangle::new([(a, axis.lo), (b, axis.hi)], super::SILENT.filled())))?;
            }
            super::stage_marks(&mut chart, &marks, (axis.lo, axis.hi))?;
            for (k, (i, c)) in shown.iter().enumerate() {
                // Flat over each interval: its percentile held for that whole second.
                for run in contiguous(&c.latency) {
                    let points = super::steps(run.iter().map(|p| (p.start_s, p.t_s, axis.clamp(pick(p)))));
                    chart.draw_series(LineSeries::new(points, series_color(*i, c).stroke_width(line_width(k, shown.len()))))?;
                }
            }
        }
        Ok(())
    }
}

/// Runs of intervals that follow one another without a gap (an interval with no reply has no
/// point, so a gap between two points is such an interval).
fn contiguous(points: &[LatencyPoint]) -> Vec<&[LatencyPoint]> {
    let mut runs = Vec::new();
    let mut from = 0;
    for k in 1..=points.len() {
        if k == points.len() || points[k].start_s > points[k - 1].t_s + super::GAP_S {
            if from < k {
                runs.push(&points[from..k]);
            }
            from = k;
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(start_s: f64, t_s: f64) -> LatencyPoint {
        LatencyPoint { start_s, t_s, p50: 1.0, p99: 2.0, p99_9: 3.0, max: 4.0, count: 10 }
    }

    #[test]
    fn a_stalled_interval_breaks_the_line_and_is_shaded() {
        let pts = [point(0.0, 1.0), point(1.0, 2.0), point(3.0, 4.0)];
        let runs = contiguous(&pts);
        assert_eq!(runs.iter().map(|r| r.len()).collect::<Vec<_>>(), vec![2, 1]);
        assert!(contiguous(&[]).is_empty());

        let c = ConfigSeries {
            latency: pts.to_vec(),
            throughput: [1.0, 2.0, 3.0, 4.0, 5.0].map(|t| crate::series::BandPoint { start_s: t - 1.0, t_s: t, median: 0.0, min: 0.0, max: 0.0 }).to_vec(),
            ..Default::default()
        };
        assert_eq!(super::super::silent_spans(&c), vec![(2.0, 3.0), (4.0, 5.0)], "the stall between and the one at the end");
    }
}
