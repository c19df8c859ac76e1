//! Figure `latency-vs-throughput`: the classic load curve of a rate sweep, p50, p99 and p99.9
//! against the throughput each point achieved.
//!
//! One colour per sweep (the configuration it was written for), one line style and marker per
//! percentile. The x axis is the *achieved* rate, not the asked one: past the knee a server
//! answers less than it was asked, the curve bends back or bunches up, and the points where that
//! happened are ringed in red. The knee itself (the first such point of a sweep) is labelled with
//! both rates. Both axes are logarithmic: sweeps double their rate, and tails span decades.

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{config_color, draw_line, draw_marker, legend_strip, no_data, text, DrawResult, Figure, LegendEntry, LogAxis, Marker, Stroke, ALERT, GREY_TEXT};
use crate::format;
use crate::series::{SweepGroup, SweepPoint, ACHIEVED_SHARE};
use crate::stats::Spread;

pub struct LatencyVsThroughput<'a> {
    /// Every sweep of the run, in manifest order.
    pub groups: &'a [SweepGroup],
}

type Pick = fn(&SweepPoint) -> Option<Spread>;

/// The percentiles drawn, each with its own line style and marker so they read apart in every
/// colour (and in greyscale).
const PERCENTILES: [(&str, Stroke, Marker, Pick); 3] = [
    ("p50", Stroke::Solid, Marker::Dot, |p| p.p50),
    ("p99", Stroke::Dashed, Marker::Triangle, |p| p.p99),
    ("p99.9", Stroke::Dotted, Marker::Square, |p| p.p99_9),
];

/// The colour of the legend entries that explain styles rather than sweeps.
const STYLE_KEY: RGBColor = RGBColor(0x44, 0x44, 0x44);
const MARKER_RADIUS: i32 = 5;
const RING_RADIUS: i32 = 9;

impl Figure for LatencyVsThroughput<'_> {
    const NAME: &'static str = "latency-vs-throughput";
    const TITLE: &'static str = "Latency against throughput (rate sweep)";
    const HOW_TO_READ: &'static str = "Each point is one rate of a sweep: x is the throughput it achieved (echoes received per second while the window was open, median over trials), \
         y its p50, p99 and p99.9 latency from the intended send time (log scales). Latency that stays flat as the rate rises is headroom; \
         where it turns upwards the server is queueing. A red ring marks a point whose achieved rate fell short of 95 % of the asked rate: \
         the server (or the load generator) could not keep up. The first such point of a sweep, the knee, is labelled with both rates, the later ones with their asked rate.";

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let x = LogAxis::padded(self.groups.iter().flat_map(|g| measured(g).into_iter().flat_map(|p| spread_values(p.achieved))), 1.12);
        let y = LogAxis::covering(
            self.groups.iter().flat_map(|g| measured(g).into_iter().flat_map(|p| PERCENTILES.into_iter().flat_map(|(_, _, _, pick)| spread_values(pick(p))))),
        );
        let (Some(x), Some(y)) = (x, y) else {
            return no_data(area, "no sweep point has a readable summary.json");
        };

        let sweeps: Vec<LegendEntry> = self.groups.iter().map(|g| LegendEntry::line(g.name.clone(), config_color(g.color_index))).collect();
        let mut styles: Vec<LegendEntry> = PERCENTILES.iter().map(|(label, stroke, marker, _)| LegendEntry::styled(*label, STYLE_KEY, *stroke, *marker)).collect();
        styles.push(LegendEntry::styled(format!("achieved < {:.0} % of asked (overloaded)", ACHIEVED_SHARE * 100.0), ALERT, Stroke::None, Marker::Ring));
        let body = legend_strip(area, &sweeps)?;
        let body = legend_strip(&body, &styles)?;

        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .margin_right(40)
            .x_label_area_size(48)
            .y_label_area_size(84)
            .build_cartesian_2d(x.coord(), y.coord())?;
        super::house_mesh(&mut chart)
            .x_desc("achieved throughput (echoes received per second, median over trials)")
            .y_desc("latency from the intended send time")
            .x_label_formatter(&|v| format::rate_tick(*v))
            .y_label_formatter(&super::latency_tick)
            .draw()?;
        let plot = chart.plotting_area();

        for g in self.groups {
            let color = config_color(g.color_index);
            let points = measured(g);
            let at = |p: &SweepPoint, s: Spread| (x.clamp(p.achieved.map_or(0.0, |a| a.median)), y.clamp(s.median));
            for (_, stroke, marker, pick) in PERCENTILES {
                // The range over trials, where trials disagree: thin bars behind the line.
                for p in &points {
                    if let Some(s) = pick(p).filter(|s| s.n > 1 && !s.is_flat()) {
                        let xv = at(p, s).0;
                        plot.draw(&PathElement::new(vec![(xv, y.clamp(s.min)), (xv, y.clamp(s.max))], color.mix(0.5).stroke_width(1)))?;
                    }
                }
                let line: Vec<(f64, f64)> = points.iter().filter_map(|p| Some(at(p, pick(p)?))).collect();
                draw_line(plot, line.clone(), stroke, color.stroke_width(2))?;
                for xy in line {
                    draw_marker(plot, xy, marker, color, MARKER_RADIUS)?;
                }
            }
            for p in points.iter().filter(|p| p.overloaded) {
                for (_, _, _, pick) in PERCENTILES {
                    if let Some(s) = pick(p) {
                        draw_marker(plot, at(p, s), Marker::Ring, ALERT, RING_RADIUS)?;
                    }
                }
                // Past the knee, points bunch up at what the server could do: name the asked rate
                // of each, beside its lowest ring, so the stacked points can be told apart.
                if let (false, Some(s)) = (p.knee, p.p50.or(p.p99)) {
                    let (bx, by) = chart.backend_coord(&at(p, s));
                    let (left, top) = plot.get_base_pixel();
                    let style = text(13).color(&color).pos(Pos::new(HPos::Left, VPos::Center));
                    plot.strip_coord_spec().draw_text(&format!("asked {}", format::rate(p.asked)), &style, (bx - left + RING_RADIUS + 4, by - top))?;
                }
            }
            if let Some(knee) = g.knee() {
                // Above the highest percentile of the point, where the curve has left the rest behind.
                if let (Some(achieved), Some(top)) = (knee.achieved, PERCENTILES.iter().rev().find_map(|(_, _, _, pick)| pick(knee))) {
                    let label = format!("{} knee: asked {}, achieved {} msgs/s", g.name, format::rate(knee.asked), format::rate(achieved.median));
                    label_point(plot, chart.backend_coord(&at(knee, top)), &label, color)?;
                }
            }
        }
        if self.groups.iter().all(|g| g.knee().is_none()) {
            // Say so plainly: a curve without rings could also mean the overload went unflagged.
            let pixels = plot.strip_coord_spec();
            let style = text(14).color(&GREY_TEXT).pos(Pos::new(HPos::Left, VPos::Top));
            let share = ACHIEVED_SHARE * 100.0;
            pixels.draw_text(&format!("No knee: every point achieved at least {share:.0} % of its asked rate."), &style, (12, 10))?;
            pixels.draw_text("A load generator that fell behind its schedule can hide overload: see the warnings.", &style, (12, 28))?;
        }
        Ok(())
    }
}

/// The points of a sweep that measured something, by asked rate.
fn measured(g: &SweepGroup) -> Vec<&SweepPoint> {
    g.points.iter().filter(|p| p.achieved.is_some()).collect()
}

/// The median and the range of a spread, for fitting an axis around them.
fn spread_values(s: Option<Spread>) -> Vec<f64> {
    s.map(|s| vec![s.min, s.median, s.max]).unwrap_or_default()
}

/// Writes `label` up and to the left of the point at backend pixel `at`, or up and to the right
/// when it would run off the left edge of `plot`, with a short leader line to the ring.
fn label_point<DB: DrawingBackend, CT: CoordTranslate>(plot: &DrawingArea<DB, CT>, at: (i32, i32), label: &str, color: RGBColor) -> DrawResult<DB> {
    let pixels = plot.strip_coord_spec();
    let style = text(14).color(&color);
    let (tw, _) = pixels.estimate_text_size(label, &style)?;
    let (left, top) = pixels.get_base_pixel();
    let (px, py) = (at.0 - left, at.1 - top);
    let side = if px - RING_RADIUS - 16 >= tw as i32 { -1 } else { 1 };
    let (lx, ly) = (px + side * (RING_RADIUS + 12), py - RING_RADIUS - 12);
    pixels.draw(&PathElement::new(vec![(px + side * (RING_RADIUS - 2), py - RING_RADIUS + 2), (lx, ly)], color.stroke_width(1)))?;
    let anchor = if side < 0 { HPos::Right } else { HPos::Left };
    pixels.draw_text(label, &style.pos(Pos::new(anchor, VPos::Center)), (lx + side * 3, ly))
}
