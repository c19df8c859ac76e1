//! Figure `latency-vs-room-size`: broadcast delivery and completion p99 against room size, one
//! colour per server engine (see [`crate::fanout::points`]).
//!
//! Each point is the median over trials. Delivery is drawn solid, completion (the last member's
//! receipt) dashed: the gap between them is what the slowest member of a room adds.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{config_color, draw_line, legend_strip, no_data, DrawResult, Figure, LegendEntry, LogAxis, Marker, Stroke};
use crate::fanout::FanoutPoint;

pub struct LatencyVsRoomSize<'a> {
    pub points: &'a [FanoutPoint],
}

impl LatencyVsRoomSize<'_> {
    /// Broadcast points by engine, each sorted by room size.
    fn engines(&self) -> Vec<(String, Vec<&FanoutPoint>)> {
        let mut out: Vec<(String, Vec<&FanoutPoint>)> = Vec::new();
        for p in self.points.iter().filter(|p| p.workload == "broadcast" && p.delivery_p99_us.is_some()) {
            match out.iter_mut().find(|(e, _)| *e == p.engine) {
                Some((_, v)) => v.push(p),
                None => out.push((p.engine.clone(), vec![p])),
            }
        }
        for (_, v) in &mut out {
            v.sort_by_key(|p| p.room_size);
        }
        out
    }
}

impl Figure for LatencyVsRoomSize<'_> {
    const NAME: &'static str = "latency-vs-room-size";
    const TITLE: &'static str = "Broadcast latency by room size";
    const HOW_TO_READ: &'static str = "p99 one-way latency of each broadcast configuration against its room size, one colour per server engine: \
         solid per delivery, dashed until the last member of the room received the message (completion). Points are medians over trials. \
         A line rising with room size is the cost of writing each message to more sockets.";

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let engines = self.engines();
        let all = || engines.iter().flat_map(|(_, v)| v.iter());
        let sizes: Vec<f64> = all().map(|p| f64::from(p.room_size)).collect();
        let values = all().flat_map(|p| [p.delivery_p99_us, p.completion_p99_us]).flatten().map(|s| s.median);
        let (Some(x), Some(y)) = (LogAxis::padded(sizes.iter().copied(), 1.5), LogAxis::covering(values)) else {
            return no_data(area, "no broadcast configurations in this run");
        };
        let mut entries = Vec::new();
        for (i, (engine, _)) in engines.iter().enumerate() {
            entries.push(LegendEntry::styled(format!("{engine}: delivery p99"), config_color(i), Stroke::Solid, Marker::Dot));
            entries.push(LegendEntry::styled(format!("{engine}: completion p99"), config_color(i), Stroke::Dashed, Marker::Dot));
        }
        let body = legend_strip(area, &entries)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .margin_right(40)
            .x_label_area_size(48)
            .y_label_area_size(84)
            .build_cartesian_2d((x.lo..x.hi).log_scale().with_key_points(sizes.clone()), y.coord())?;
        super::house_mesh(&mut chart)
            .x_desc("members per room")
            .y_desc("p99 latency")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&super::latency_tick)
            .draw()?;
        for (i, (_, v)) in engines.iter().enumerate() {
            let color = config_color(i);
            type Pick = fn(&FanoutPoint) -> Option<f64>;
            let lines: [(Stroke, Pick); 2] =
                [(Stroke::Solid, |p| p.delivery_p99_us.map(|s| s.median)), (Stroke::Dashed, |p| p.completion_p99_us.map(|s| s.median))];
            for (stroke, pick) in lines {
                let pts: Vec<(f64, f64)> = v.iter().filter_map(|p| Some((f64::from(p.room_size), y.clamp(pick(p)?)))).collect();
                let area = chart.plotting_area();
                draw_line(area, pts.clone(), stroke, color.stroke_width(super::LINE_WIDTH))?;
                for &pt in &pts {
                    super::draw_marker(area, pt, Marker::Dot, color, 4)?;
                }
            }
        }
        Ok(())
    }
}
