//! Figure `latency-heatmap`: every interval's latency histogram as a column of colour, one panel
//! per configuration.
//!
//! Percentile lines summarise a second by four numbers; the heat map shows the whole
//! distribution of every second, so what varies over time is seen rather than inferred: the main
//! band of a steady server, a second band when some messages wait out a pause, a smear at the
//! start while caches and connections warm up. Colour is the share of that interval's messages in
//! each latency band on a log scale (one message in a hundred thousand is still visible), in
//! viridis, which reads the same to most colour-blind readers and in greyscale; white is none.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{no_data, text, DrawResult, Figure, LogAxis, DESC_FONT, GREY_TEXT, TICK_FONT};
use crate::series::{heat_bin_range, ConfigSeries};

pub struct LatencyHeatmap<'a> {
    /// Every configuration of the run, in manifest order.
    pub configs: &'a [ConfigSeries],
}

/// Height of one configuration's panel in pixels.
const PANEL_HEIGHT: u32 = 210;
/// Width of the colour scale at the right.
const SCALE_WIDTH: u32 = 150;
/// The rarest share the colour scale goes down to: rarer cells get its colour.
const MIN_SHARE: f64 = 1e-6;

/// matplotlib's viridis at ten evenly spaced points (as R's `viridis(10)`), interpolated linearly.
const VIRIDIS: [(u8, u8, u8); 10] = [
    (0x44, 0x01, 0x54),
    (0x48, 0x28, 0x78),
    (0x3E, 0x4A, 0x89),
    (0x31, 0x68, 0x8E),
    (0x26, 0x82, 0x8E),
    (0x1F, 0x9E, 0x89),
    (0x35, 0xB7, 0x79),
    (0x6D, 0xCD, 0x59),
    (0xB4, 0xDE, 0x2C),
    (0xFD, 0xE7, 0x25),
];

/// The viridis colour at `t` in [0, 1].
pub fn viridis(t: f64) -> RGBColor {
    let x = t.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |p: u8, q: u8| (f64::from(p) + (f64::from(q) - f64::from(p)) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A log colour scale from `lo` to 100 %.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ShareScale {
    lo: f64,
}

impl ShareScale {
    /// Down to the decade of the rarest share present, but not below [`MIN_SHARE`].
    fn covering(min_share: f64) -> Self {
        let lo = 10f64.powf(min_share.max(MIN_SHARE).log10().floor()).min(0.1);
        Self { lo }
    }

    fn position(&self, share: f64) -> f64 {
        (share.max(self.lo).log10() - self.lo.log10()) / -self.lo.log10()
    }

    fn color(&self, share: f64) -> RGBColor {
        viridis(self.position(share))
    }
}

/// `0.01 %`, `1 %`, `100 %`.
fn share_label(share: f64) -> String {
    crate::format::trim_zeros(format!("{:.6}", share * 100.0)) + " %"
}

impl LatencyHeatmap<'_> {
    fn shown(&self) -> Vec<&ConfigSeries> {
        self.configs.iter().filter(|c| !c.heatmap.is_empty()).collect()
    }
}

impl Figure for LatencyHeatmap<'_> {
    const NAME: &'static str = "latency-heatmap";
    const TITLE: &'static str = "Latency heat map";
    const HOW_TO_READ: &'static str = "One column per histogram interval (1 s unless the scenario sets a shorter `interval`; all trials of a configuration \
         added interval by interval), one panel per configuration; a cell's colour is the share of that interval's messages whose latency falls in its \
         band (log colour scale; white: none). A steady server is one bright band; pauses show as stripes above it when the interval is shorter than \
         their period (as a second band when it is not), warm-up as a smear at the start.";

    fn size(&self) -> (u32, u32) {
        let n = self.shown().len().max(1) as u32;
        (super::SIZE.0, (120 + n * PANEL_HEIGHT).clamp(480, 4_000))
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let shown = self.shown();
        let bins = shown.iter().flat_map(|c| c.heatmap.iter().flat_map(|col| col.cells.iter().map(|(b, _)| *b)));
        let (lo_bin, hi_bin) = bins.fold((i32::MAX, i32::MIN), |(lo, hi), b| (lo.min(b), hi.max(b)));
        if lo_bin > hi_bin {
            return no_data(area, "no latency data: no trial has a readable latency.hlog");
        }
        let Some(y) = LogAxis::covering([heat_bin_range(lo_bin).0, heat_bin_range(hi_bin).1]) else {
            return no_data(area, "no latency data: no trial has a readable latency.hlog");
        };
        let min_share = shown
            .iter()
            .flat_map(|c| c.heatmap.iter().flat_map(|col| col.cells.iter().map(move |(_, n)| *n as f64 / col.total.max(1) as f64)))
            .fold(1.0, f64::min);
        let scale = ShareScale::covering(min_share);
        let max_t = shown.iter().flat_map(|c| c.heatmap.iter().map(|col| col.end_s).chain(super::silent_spans(c).into_iter().map(|(_, b)| b))).fold(0.0, f64::max);

        let (width, _) = area.dim_in_pixel();
        let (panels_area, scale_area) = area.margin(4, 8, 6, 0).split_horizontally(width - SCALE_WIDTH);
        let panels = panels_area.split_evenly((shown.len(), 1));
        let mut plot_top = None;
        let mut plot_bottom = 0;
        for (k, (panel, c)) in panels.iter().zip(&shown).enumerate() {
            let last = k + 1 == shown.len();
            let mut chart = ChartBuilder::on(panel)
                .caption(&c.name, text(16))
                .margin(4)
                .margin_right(16)
                .x_label_area_size(if last { 44 } else { 22 })
                .y_label_area_size(76)
                .build_cartesian_2d(super::time_axis(max_t), y.coord())?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .disable_y_mesh()
                .x_desc(if last { "time since the measured window began (s)" } else { "" })
                .y_desc("latency")
                .x_label_formatter(&super::seconds_tick)
                .y_label_formatter(&super::latency_tick)
                .x_labels(12)
                .label_style(text(TICK_FONT))
                .axis_desc_style(text(DESC_FONT))
                .draw()?;
            let y = &y;
            let cells = c.heatmap.iter().flat_map(|col| {
                col.cells.iter().map(move |&(bin, n)| {
                    let (lo, hi) = heat_bin_range(bin);
                    let color = scale.color(n as f64 / col.total.max(1) as f64);
                    Rectangle::new([(col.start_s, y.clamp(lo)), (col.end_s, y.clamp(hi))], color.filled())
                })
            });
            chart.draw_series(cells)?;
            // Intervals with no reply have no histogram: shaded and named, not left blank.
            for (a, b) in super::silent_spans(c) {
                chart.draw_series([Rectangle::new([(a, y.lo), (b, y.hi)], super::SILENT.filled())])?;
                let style = text(TICK_FONT).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ));
                chart.draw_series([Text::new("no reply", ((a + b) / 2.0, (y.lo * y.hi).sqrt()), style)])?;
            }
            // In backend pixels: the colour scale spans from the first panel's top to the last's bottom.
            plot_top.get_or_insert(chart.backend_coord(&(0.0, y.hi)).1);
            plot_bottom = chart.backend_coord(&(0.0, y.lo)).1;
        }
        color_scale(&scale_area, &scale, plot_top.unwrap_or(20), plot_bottom)
    }
}

/// The colour scale: a vertical gradient from the rarest share (bottom) to 100 % (top), ticked
/// at each decade, spanning the panels' plotting height (`top`, `bottom` in backend pixels).
fn color_scale<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, scale: &ShareScale, top: i32, bottom: i32) -> DrawResult<DB> {
    let offset = area.get_base_pixel().1;
    let bottom = bottom - offset;
    let top = (top - offset).clamp(48, (bottom - 60).max(48));
    let (x0, x1) = (14, 34);
    // One-pixel rows: a smooth gradient in the PNG, and in the SVG a few hundred small rects.
    let steps = (bottom - top).max(1);
    for i in 0..steps {
        let t = 1.0 - f64::from(i) / f64::from(steps);
        area.draw(&Rectangle::new([(x0, top + i), (x1, top + i + 1)], viridis(t).filled()))?;
    }
    area.draw(&Rectangle::new([(x0, top), (x1, bottom)], BLACK.mix(0.5).stroke_width(1)))?;
    let decades = -scale.lo.log10().round() as i32;
    for d in 0..=decades {
        let share = 10f64.powi(-d);
        let yy = top + ((bottom - top) as f64 * (1.0 - scale.position(share))).round() as i32;
        area.draw(&PathElement::new(vec![(x1, yy), (x1 + 5, yy)], BLACK.stroke_width(1)))?;
        area.draw_text(&share_label(share), &text(TICK_FONT).pos(Pos::new(HPos::Left, VPos::Center)), (x1 + 8, yy))?;
    }
    let style = text(DESC_FONT).color(&GREY_TEXT).pos(Pos::new(HPos::Center, VPos::Bottom));
    area.draw_text("share of the", &style, (x1 + 20, top - 30))?;
    area.draw_text("interval's messages", &style, (x1 + 20, top - 13))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_runs_from_purple_to_yellow() {
        assert_eq!(viridis(0.0), RGBColor(0x44, 0x01, 0x54));
        assert_eq!(viridis(1.0), RGBColor(0xFD, 0xE7, 0x25));
        assert_eq!(viridis(-1.0), viridis(0.0));
        let mid = viridis(0.5);
        assert!(mid.1 > mid.0, "greenish in the middle: {mid:?}");
    }

    #[test]
    fn the_share_scale_is_logarithmic_down_to_the_rarest_decade() {
        let s = ShareScale::covering(0.000_35);
        assert_eq!(s.lo, 1e-4);
        assert!((s.position(1.0) - 1.0).abs() < 1e-12);
        assert!((s.position(0.01) - 0.5).abs() < 1e-12);
        assert_eq!(s.position(1e-9), 0.0);
        assert_eq!(ShareScale::covering(1e-12).lo, MIN_SHARE);
        assert_eq!(ShareScale::covering(0.5).lo, 0.1);
        assert_eq!(share_label(0.001), "0.1 %");
        assert_eq!(share_label(1.0), "100 %");
        assert_eq!(share_label(1e-6), "0.0001 %");
    }
}
