//! Figure `capacity-probes`: every probe of every capacity search, the objective, and the
//! capacity each configuration reached.
//!
//! x is the rate a probe asked for, y the value of the statistic the objective bounds (both log
//! scales: searches double their rate, latency past capacity climbs by decades). A probe that
//! met the objective is a filled dot, one that failed a cross; the objective's bound is a dashed
//! horizontal line and each configuration's capacity a dotted vertical line in its colour. A
//! search reads left to right as doubling until a cross, then dots and crosses closing in on the
//! dotted line from both sides.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use wsbench_core::slo::Slo;

use super::{config_color, draw_line, draw_marker, legend_strip, no_data, text, DrawResult, Figure, LegendEntry, LogAxis, Marker, Stroke, GREY_TEXT};
use crate::format;
use crate::series::CapacityConfig;

pub struct CapacityProbes<'a> {
    /// The configurations that searched, in manifest order.
    pub configs: &'a [CapacityConfig],
}

/// Pixels between the marks of neighbouring configurations at the same rate.
const DODGE: i32 = 9;

/// The colour of the objective and of legend entries that explain styles.
const STYLE_KEY: RGBColor = RGBColor(0x44, 0x44, 0x44);

/// One probe as drawn.
struct ProbeMark {
    config: usize,
    /// Position in its search, from 1.
    order: usize,
    asked: f64,
    /// `None`: the probe's trial failed and measured nothing.
    value: Option<f64>,
    passed: bool,
}

impl CapacityProbes<'_> {
    fn marks(&self) -> Vec<ProbeMark> {
        let mut out = Vec::new();
        for (k, c) in self.configs.iter().enumerate() {
            for (_, search) in &c.trials {
                for (i, p) in search.probes.iter().enumerate() {
                    out.push(ProbeMark { config: k, order: i + 1, asked: c.probe_at(p), value: c.probe_value(&p.latency_us), passed: p.passed });
                }
            }
        }
        out
    }

    /// The different objectives of the configurations (in practice one: the scenario's).
    fn objectives(&self) -> Vec<Slo> {
        let mut out: Vec<Slo> = Vec::new();
        for o in self.configs.iter().filter_map(|c| c.objective) {
            if !out.contains(&o) {
                out.push(o);
            }
        }
        out
    }
}

impl Figure for CapacityProbes<'_> {
    const NAME: &'static str = "capacity-probes";
    const TITLE: &'static str = "Capacity search: every probe against the objective";
    const HOW_TO_READ: &'static str = "Each mark is one probe of a capacity search (one whole trial at one open-loop rate): x the rate it asked for, \
         y the latency statistic the objective bounds, measured from the intended send time (log scales). Dots met the objective; crosses failed it \
         (too slow, overloaded, or errors; the table gives each probe's reason, so a cross below the dashed line was overloaded or had errors). \
         The dashed line is the objective's bound, the dotted lines each configuration's capacity: the highest rate that passed.";

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let marks = self.marks();
        let objectives = self.objectives();
        let x = LogAxis::padded(marks.iter().map(|m| m.asked).chain(self.configs.iter().map(|c| c.capacity.median)), 1.12);
        let y = LogAxis::covering(marks.iter().filter_map(|m| m.value).chain(objectives.iter().map(|o| o.bound_us)));
        if objectives.is_empty() {
            return no_data(area, "the objective in capacity.json could not be read, so the probes cannot be placed against it");
        }
        let (Some(x), Some(y)) = (x, y) else {
            return no_data(area, "no probe measured anything");
        };

        let configs: Vec<LegendEntry> = self
            .configs
            .iter()
            .map(|c| {
                let capacity = if c.capacity.median > 0.0 { format!("capacity {} {}", format::rate(c.capacity.median), c.axis_unit()) } else { "none passed".into() };
                LegendEntry::styled(format!("{} ({capacity})", c.name), config_color(c.index), Stroke::Dotted, Marker::Dot)
            })
            .collect();
        let mut styles = vec![
            LegendEntry::styled("probe met the objective", STYLE_KEY, Stroke::None, Marker::Dot),
            LegendEntry::styled("probe failed", STYLE_KEY, Stroke::None, Marker::Cross),
            LegendEntry::styled("objective's bound", STYLE_KEY, Stroke::Dashed, Marker::None),
            LegendEntry::styled("capacity (median over trials)", STYLE_KEY, Stroke::Dotted, Marker::None),
        ];
        if marks.iter().any(|m| m.value.is_none()) {
            styles.push(LegendEntry::styled("on the top edge: the probe's trial failed, nothing measured", STYLE_KEY, Stroke::None, Marker::Cross));
        }
        let body = legend_strip(area, &configs)?;
        let body = legend_strip(&body, &styles)?;

        let stat = match objectives.as_slice() {
            [one] => format!("{} latency", one.stat.name()),
            _ => "latency of the objective's statistic".into(),
        };
        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .margin_right(40)
            .x_label_area_size(48)
            .y_label_area_size(84)
            .build_cartesian_2d(x.coord(), y.coord())?;
        super::house_mesh(&mut chart)
            .x_desc(match self.configs.first().map(|c| c.axis_unit()) {
                Some("connections") => "connections",
                _ => "asked rate (msgs/s)",
            })
            .y_desc(format!("{stat} from the intended send time"))
            .x_label_formatter(&|v| format::rate_tick(*v))
            .y_label_formatter(&super::latency_tick)
            .draw()?;
        let plot = chart.plotting_area();
        let pixels = plot.strip_coord_spec();
        let (width, _) = pixels.dim_in_pixel();
        let to_pixels = |xy: (f64, f64)| {
            let (bx, by) = chart.backend_coord(&xy);
            let (left, top) = pixels.get_base_pixel();
            (bx - left, by - top)
        };

        for o in &objectives {
            let bound = y.clamp(o.bound_us);
            draw_line(plot, vec![(x.lo, bound), (x.hi, bound)], Stroke::Dashed, STYLE_KEY.stroke_width(2))?;
            let (_, py) = to_pixels((x.hi, bound));
            let style = text(14).color(&STYLE_KEY).pos(Pos::new(HPos::Right, VPos::Bottom));
            pixels.draw_text(&format!("objective: {o}"), &style, (width as i32 - 8, py - 4))?;
        }
        for (k, c) in self.configs.iter().enumerate().filter(|(_, c)| c.capacity.median > 0.0) {
            let color = config_color(c.index);
            let at = x.clamp(c.capacity.median);
            draw_line(plot, vec![(at, y.lo), (at, y.hi)], Stroke::Dotted, color.stroke_width(2))?;
            // Labels of neighbouring capacities are staggered so they do not overwrite each other.
            let (px, _) = to_pixels((at, y.hi));
            let label = format!("{}: {}", c.name, format::rate(c.capacity.median));
            let (tw, _) = pixels.estimate_text_size(&label, &text(14))?;
            let (lx, anchor) = if px + 6 + tw as i32 <= width as i32 { (px + 6, HPos::Left) } else { (px - 6, HPos::Right) };
            pixels.draw_text(&label, &text(14).color(&color).pos(Pos::new(anchor, VPos::Top)), (lx, 6 + 18 * k as i32))?;
        }
        // The search's order is worth seeing when there is one search per configuration; with
        // several trials the numbers would pile up on the same rates.
        let number_probes = self.configs.iter().all(|c| c.trials.len() == 1);
        let n = self.configs.len() as i32;
        for m in &marks {
            let color = config_color(self.configs[m.config].index);
            let (px, py) = to_pixels((x.clamp(m.asked), m.value.map_or(y.hi, |v| y.clamp(v))));
            // Searches of different configurations often probe the same rates: set their marks a
            // few pixels apart, side by side, rather than on top of each other.
            let px = px + (2 * m.config as i32 - (n - 1)) * DODGE / 2;
            let marker = if m.passed { Marker::Dot } else { Marker::Cross };
            draw_marker(&pixels, (px, py), marker, color, if m.passed { 5 } else { 6 })?;
            if number_probes {
                let style = text(12).color(&GREY_TEXT).pos(Pos::new(HPos::Left, VPos::Bottom));
                pixels.draw_text(&m.order.to_string(), &style, (px + 6, py - 5))?;
            }
        }
        Ok(())
    }
}
