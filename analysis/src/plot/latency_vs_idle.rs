//! Figure `latency-vs-idle`: the first message's round trip after a connection stayed idle,
//! against the idle time, one line per configuration (a setting: TCP_NODELAY, heartbeats).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{config_color, draw_line, legend_strip, no_data, DrawResult, Figure, LegendEntry, LogAxis, Marker, Stroke};
use crate::series::IdleLine;

pub struct LatencyVsIdle<'a> {
    pub lines: &'a [IdleLine],
}

impl Figure for LatencyVsIdle<'_> {
    const NAME: &'static str = "latency-vs-idle";
    const TITLE: &'static str = "First message after idle";
    const HOW_TO_READ: &'static str = "Round trip of the first message a connection sends after staying idle, against how long it was idle (both axes logarithmic): \
         p50 solid with dots, p99 dotted with triangles, one colour per setting (TCP_NODELAY on or off, client heartbeats or none). \
         A line that climbs with idle time is a connection that went cold; heartbeats that keep it flat are the remedy WebSockets.jl named.";

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (Some(x), Some(y)) = (
            LogAxis::padded(self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)), 1.5),
            LogAxis::covering(self.lines.iter().flat_map(|l| l.points.iter().flat_map(|p| [p.1, p.2]))),
        ) else {
            return no_data(area, "no idle probe in this run");
        };
        let mut entries = Vec::new();
        for (i, l) in self.lines.iter().enumerate() {
            entries.push(LegendEntry::styled(format!("{} p50", l.name), config_color(i), Stroke::Solid, Marker::Dot));
            entries.push(LegendEntry::styled(format!("{} p99", l.name), config_color(i), Stroke::Dotted, Marker::Triangle));
        }
        let body = legend_strip(area, &entries)?;
        let mut ticks: Vec<f64> = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).collect();
        ticks.sort_by(f64::total_cmp);
        ticks.dedup();
        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .margin_right(40)
            .x_label_area_size(48)
            .y_label_area_size(84)
            .build_cartesian_2d((x.lo..x.hi).log_scale().with_key_points(ticks), y.coord())?;
        super::house_mesh(&mut chart)
            .x_desc("idle time before the message")
            .y_desc("round trip of the first message")
            .x_label_formatter(&|v| wsbench_core::units::format_duration(std::time::Duration::from_secs_f64(*v)))
            .y_label_formatter(&super::latency_tick)
            .draw()?;
        let plot = chart.plotting_area();
        for (i, l) in self.lines.iter().enumerate() {
            let color = config_color(i);
            for (pick, stroke, marker) in [(1usize, Stroke::Solid, Marker::Dot), (2, Stroke::Dotted, Marker::Triangle)] {
                let pts: Vec<(f64, f64)> = l.points.iter().map(|p| (p.0, y.clamp(if pick == 1 { p.1 } else { p.2 }))).collect();
                draw_line(plot, pts.clone(), stroke, color.stroke_width(2))?;
                for at in pts {
                    super::draw_marker(plot, at, marker, color, 4)?;
                }
            }
        }
        Ok(())
    }
}
