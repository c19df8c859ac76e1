//! Figure `latency-vs-size`: p50 and p99 against message size, for a run whose configurations
//! differ only in message size (see [`crate::series::size_sweep`]).
//!
//! Each point is the median over trials, its bar the range from the fastest to the slowest
//! trial. Both axes are logarithmic when the sizes span a factor of ten or more, so a cost
//! proportional to size is a straight line and a fixed per-message cost is flat.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{config_color, legend_strip, no_data, DrawResult, Figure, LegendEntry, LogAxis};
use crate::format;
use crate::series::SizePoint;
use crate::stats::Spread;

pub struct LatencyVsSize<'a> {
    /// Sorted by size.
    pub points: &'a [SizePoint],
}

type Pick = fn(&SizePoint) -> Spread;

/// The percentiles drawn, with the palette colour each gets.
const LINES: [(&str, usize, Pick); 2] = [("p50 (median over trials)", 0, |p| p.p50), ("p99 (median over trials)", 2, |p| p.p99)];

impl Figure for LatencyVsSize<'_> {
    const NAME: &'static str = "latency-vs-size";
    const TITLE: &'static str = "Latency by message size";
    const HOW_TO_READ: &'static str = "p50 and p99 latency of each configuration against its message size (header included); points are medians over trials, \
         bars the range between trials. A flat line is a per-message cost that does not depend on size; a line rising with size is copying, \
         masking or parsing cost, and a jump at one size is a buffer or frame boundary.";

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let sizes: Vec<f64> = self.points.iter().map(|p| p.size as f64).collect();
        let (Some(x), Some(y)) = (
            LogAxis::covering(sizes.iter().copied()),
            LogAxis::covering(self.points.iter().flat_map(|p| LINES.map(|(_, _, f)| f(p)).into_iter().flat_map(|s| [s.min, s.max]))),
        ) else {
            return no_data(area, "no latency data for the sizes of this run");
        };
        // Ticks at the sizes measured: they are the only sizes the figure says anything about.
        let ticks = sizes.clone();
        let entries: Vec<LegendEntry> = LINES.iter().map(|(label, c, _)| LegendEntry::line(*label, config_color(*c))).collect();
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
        for (_, c, pick) in LINES {
            let color = config_color(c);
            chart.draw_series(self.points.iter().map(|p| {
                let s = pick(p);
                PathElement::new(vec![(p.size as f64, y.clamp(s.min)), (p.size as f64, y.clamp(s.max))], color.mix(0.6).stroke_width(2))
            }))?;
            chart.draw_series(LineSeries::new(self.points.iter().map(|p| (p.size as f64, y.clamp(pick(p).median))), color.stroke_width(2)).point_size(4))?;
        }
        Ok(())
    }
}
