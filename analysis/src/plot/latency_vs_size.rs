//! Figure `latency-vs-size`: p50 and p99 against message size, for a run whose configurations
//! differ only in message size (see [`crate::series::size_sweep`]).
//!
//! Each point is the median over trials, its bar the range from the fastest to the slowest
//! trial. Both axes are logarithmic when the sizes span a factor of ten or more, so a cost
//! proportional to size is a straight line and a fixed per-message cost is flat.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{config_color, draw_line, legend_strip, no_data, DrawResult, Figure, LegendEntry, LogAxis, Marker, Stroke};
use crate::format;
use crate::series::{SizeGroup, SizePoint};
use crate::stats::Spread;

pub struct LatencyVsSize<'a> {
    /// One entry per group of configurations that differ only in size.
    pub groups: &'a [SizeGroup],
}

type Pick = fn(&SizePoint) -> Spread;

/// Points of the fitted model drawn per decade of size: enough for a smooth curve on log axes.
const FIT_STEPS_PER_DECADE: f64 = 24.0;

impl Figure for LatencyVsSize<'_> {
    const NAME: &'static str = "latency-vs-size";
    const TITLE: &'static str = "Latency by message size";
    const HOW_TO_READ: &'static str = "p50 latency (solid, dots) and p99 (dotted, triangles) of each configuration against its message size (header included), \
         both axes logarithmic; points are medians over trials, bars the range between trials. The dashed line is the model t = t0 + size / bandwidth \
         fitted to the p50 points: flat where the fixed per-message cost t0 dominates, rising where copying, masking and the network's bandwidth do; \
         a point far off it is a buffer or frame boundary.";

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let lines: [(&str, Pick, Stroke, Marker); 2] = [("p50", |p| p.p50, Stroke::Solid, Marker::Dot), ("p99", |p| p.p99, Stroke::Dotted, Marker::Triangle)];
        let sizes: Vec<f64> = self.groups.iter().flat_map(|g| g.points.iter().map(|p| p.size as f64)).collect();
        let (Some(x), Some(y)) = (
            LogAxis::covering(sizes.iter().copied()),
            LogAxis::covering(self.groups.iter().flat_map(|g| g.points.iter().flat_map(|p| lines.map(|(_, f, _, _)| f(p)).into_iter().flat_map(|s| [s.min, s.max])))),
        ) else {
            return no_data(area, "no latency data for the sizes of this run");
        };
        // Ticks at the sizes measured, thinned where log spacing would make labels collide:
        // a tick only a third of a decade or less from the last one kept is dropped.
        let mut measured = sizes.clone();
        measured.sort_by(f64::total_cmp);
        measured.dedup();
        let mut ticks: Vec<f64> = Vec::new();
        for s in measured {
            if ticks.last().is_none_or(|last| (s / last).log10() > 0.3) {
                ticks.push(s);
            }
        }
        let mut entries = Vec::new();
        for (i, g) in self.groups.iter().enumerate() {
            let name = if g.name.is_empty() { String::new() } else { format!("{} ", g.name) };
            for (label, _, stroke, marker) in lines {
                entries.push(LegendEntry::styled(format!("{name}{label}"), config_color(i), stroke, marker));
            }
            if g.fit.is_some() {
                entries.push(LegendEntry::styled(format!("{name}fit"), config_color(i), Stroke::Dashed, Marker::None));
            }
        }
        let body = legend_strip(area, &entries)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .margin_right(40)
            .x_label_area_size(48)
            .y_label_area_size(84)
            .build_cartesian_2d((x.lo..x.hi).log_scale().with_key_points(ticks), y.coord())?;
        super::house_mesh(&mut chart)
            .x_desc("message size (bytes, header included)")
            .y_desc("latency")
            .x_label_formatter(&|v| format::bytes(*v))
            .y_label_formatter(&super::latency_tick)
            .draw()?;
        let plot = chart.plotting_area();
        for (i, g) in self.groups.iter().enumerate() {
            let color = config_color(i);
            for (_, pick, stroke, marker) in lines {
                for p in &g.points {
                    let s = pick(p);
                    plot.draw(&PathElement::new(vec![(p.size as f64, y.clamp(s.min)), (p.size as f64, y.clamp(s.max))], color.mix(0.6).stroke_width(2)))?;
                }
                let pts: Vec<(f64, f64)> = g.points.iter().map(|p| (p.size as f64, y.clamp(pick(p).median))).collect();
                draw_line(plot, pts.clone(), stroke, color.stroke_width(2))?;
                for at in pts {
                    super::draw_marker(plot, at, marker, color, 4)?;
                }
            }
            if let Some(fit) = g.fit {
                let (lo, hi) = (g.points[0].size as f64, g.points[g.points.len() - 1].size as f64);
                let steps = ((hi / lo).log10() * FIT_STEPS_PER_DECADE).ceil().max(2.0) as usize;
                let curve: Vec<(f64, f64)> = (0..=steps)
                    .map(|k| lo * (hi / lo).powf(k as f64 / steps as f64))
                    .map(|size| (size, y.clamp(fit.at(size).max(f64::MIN_POSITIVE))))
                    .collect();
                draw_line(plot, curve, Stroke::Dashed, color.mix(0.8).stroke_width(1))?;
            }
        }
        Ok(())
    }
}
