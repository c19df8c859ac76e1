//! Figures: one file per figure, each drawn once by a function generic over plotters'
//! `DrawingBackend`, so the PNG and the SVG of a figure are the same drawing.
//!
//! This module owns what figures share: the bundled font (registered once; no system fonts or
//! fontconfig are ever consulted), the colour of each configuration (and the shades of one colour
//! that the points of a rate sweep share), line strokes and point markers, the title block, the
//! legend strip, log-axis ticks with readable labels, and rendering to files. Figures only draw
//! data prepared in [`crate::series`]; they compute no statistics.

mod capacity_probes;
mod crisp_text;
mod latency_cdf;
mod latency_heatmap;
mod latency_over_time;
mod latency_vs_idle;
mod latency_vs_room_size;
mod latency_vs_size;
mod latency_vs_throughput;
mod percentile_distribution;
mod server_resources;
mod throughput_over_time;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::RangedCoordf64;
use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::{CoordTranslate, Shift};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::AnalysisError;
use crate::series::{BandPoint, ConfigSeries};

pub use capacity_probes::CapacityProbes;
pub use latency_cdf::LatencyCdf;
pub use latency_heatmap::LatencyHeatmap;
pub use latency_over_time::LatencyOverTime;
pub use latency_vs_idle::LatencyVsIdle;
pub use latency_vs_room_size::LatencyVsRoomSize;
pub use latency_vs_size::LatencyVsSize;
pub use latency_vs_throughput::LatencyVsThroughput;
pub use percentile_distribution::PercentileDistribution;
pub use server_resources::ServerResources;
pub use throughput_over_time::ThroughputOverTime;

/// DejaVu Sans (Bitstream Vera license, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The family every text style names; it resolves to the bundled font only.
pub const FONT_FAMILY: &str = "sans-serif";

/// Size of a figure in pixels unless it says otherwise (the SVG uses the same user units).
pub const SIZE: (u32, u32) = (1200, 700);

/// Result of drawing on backend `DB`.
pub type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// One figure of the report.
pub trait Figure {
    /// File stem: `NAME.png` and `NAME.svg`.
    const NAME: &'static str;
    const TITLE: &'static str;
    /// One line for the report: what the figure shows and what to look for.
    const HOW_TO_READ: &'static str;
    /// Draws the figure below the title block.
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
    /// Width and height in pixels; a figure with a panel per configuration grows with them.
    fn size(&self) -> (u32, u32) {
        SIZE
    }
}

/// The files of one rendered figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigureFiles {
    pub name: &'static str,
    pub title: &'static str,
    pub how_to_read: &'static str,
    pub png: PathBuf,
    pub svg: PathBuf,
}

/// Registers the bundled font once per process; every later call is free.
pub fn ensure_font() -> Result<(), AnalysisError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(AnalysisError::Font)
    }
}

/// Writes `dir/NAME.png` and `dir/NAME.svg`; `subtitle` says which run the figure belongs to, so
/// a figure shared on its own still carries its context.
pub fn render<F: Figure>(figure: &F, subtitle: &str, dir: &Path) -> Result<FigureFiles, AnalysisError> {
    ensure_font()?;
    let png = dir.join(format!("{}.png", F::NAME));
    let svg = dir.join(format!("{}.svg", F::NAME));
    let failed = |path: &Path, e: &dyn std::fmt::Display| AnalysisError::Plot { path: path.to_owned(), message: e.to_string() };

    let size = figure.size();
    let root = crisp_text::CrispText::new(BitMapBackend::new(&png, size), FONT).ok_or(AnalysisError::Font)?.into_drawing_area();
    draw_whole(figure, subtitle, &root).map_err(|e| failed(&png, &e))?;
    root.present().map_err(|e| failed(&png, &e))?;
    drop(root);

    let root = SVGBackend::new(&svg, size).into_drawing_area();
    draw_whole(figure, subtitle, &root).map_err(|e| failed(&svg, &e))?;
    root.present().map_err(|e| failed(&svg, &e))?;
    drop(root);

    Ok(FigureFiles { name: F::NAME, title: F::TITLE, how_to_read: F::HOW_TO_READ, png, svg })
}

fn draw_whole<F: Figure, DB: DrawingBackend>(figure: &F, subtitle: &str, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (w, _) = root.dim_in_pixel();
    let (head, body) = root.split_vertically(58);
    head.draw_text(F::TITLE, &text(24).pos(Pos::new(HPos::Center, VPos::Top)), (w as i32 / 2, 8))?;
    head.draw_text(subtitle, &text(14).color(&GREY_TEXT).pos(Pos::new(HPos::Center, VPos::Top)), (w as i32 / 2, 38))?;
    figure.draw(&body)
}

// ---------------------------------------------------------------- shared style

/// Tableau 10: distinct for most colour-blind readers and dark enough on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0x79, 0x70, 0x6E),
];

pub const GREY_TEXT: RGBColor = RGBColor(0x55, 0x55, 0x55);
const BOLD_GRID: RGBColor = RGBColor(0xCC, 0xCC, 0xCC);
const LIGHT_GRID: RGBColor = RGBColor(0xEE, 0xEE, 0xEE);

/// The colour of the configuration at `index` in the run's manifest, the same in every figure.
pub fn config_color(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// The colour of a configuration in the figures that draw one line per configuration. Points of
/// a rate sweep share their sweep's colour, light at the lowest rate and dark at the highest, so
/// ten lines read as two sweeps rising in rate rather than ten unrelated colours.
pub fn series_color(index: usize, c: &ConfigSeries) -> RGBColor {
    match c.family {
        Some(f) => shade(config_color(f.color_index), f.rank, f.size),
        None => config_color(index),
    }
}

/// `base` lightened (towards white) for the first of `size` steps, darkened (towards black) for
/// the last. The range stops short of white and black, so every step stays visible on white and
/// keeps its hue.
pub fn shade(base: RGBColor, step: usize, size: usize) -> RGBColor {
    if size <= 1 {
        return base;
    }
    let t = step.min(size - 1) as f64 / (size - 1) as f64;
    // t = 0: 50 % white; t = 1: 35 % black; the palette colour itself sits in between.
    let towards = |c: u8, target: f64, amount: f64| (f64::from(c) + (target - f64::from(c)) * amount).round() as u8;
    let (target, amount) = if t < 0.6 { (255.0, 0.5 * (0.6 - t) / 0.6) } else { (0.0, 0.35 * (t - 0.6) / 0.4) };
    RGBColor(towards(base.0, target, amount), towards(base.1, target, amount), towards(base.2, target, amount))
}

/// The red of warning marks (overloaded points): darker than the palette's red, so a ring reads
/// as a mark rather than as another configuration.
pub const ALERT: RGBColor = RGBColor(0xC0, 0x10, 0x10);

/// Text in the bundled font at `size` pixels.
pub fn text(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT_FAMILY, size).into_font()).color(&BLACK)
}

pub fn bold_grid() -> ShapeStyle {
    BOLD_GRID.stroke_width(1)
}

pub fn light_grid() -> ShapeStyle {
    LIGHT_GRID.stroke_width(1)
}

/// A chart's mesh in the house style (tick and description fonts, the two grid greys); the
/// figure adds its own axis descriptions, label formatters and tick counts, then draws it.
pub fn house_mesh<'a, 'b, X, Y, XT, YT, DB>(chart: &'b mut ChartContext<'a, DB, Cartesian2d<X, Y>>) -> MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = XT> + ValueFormatter<XT>,
    Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
    DB: DrawingBackend,
{
    let mut mesh = chart.configure_mesh();
    mesh.label_style(text(TICK_FONT)).axis_desc_style(text(DESC_FONT)).bold_line_style(bold_grid()).light_line_style(light_grid());
    mesh
}

/// Label size of axis ticks.
pub const TICK_FONT: u32 = 14;
/// Size of axis descriptions ("latency", "time (s)").
pub const DESC_FONT: u32 = 15;
/// Width of the last-drawn data line; earlier ones are wider, see [`line_width`].
pub const LINE_WIDTH: u32 = 2;

/// Width of the `k`-th of `n` lines drawn on one chart: the first widest, the last
/// [`LINE_WIDTH`]. Configurations that measure the same (an open-loop rate every server keeps
/// up with) then show as nested stripes of each colour instead of the last one hiding the rest.
pub fn line_width(k: usize, n: usize) -> u32 {
    if n <= 1 {
        return LINE_WIDTH;
    }
    let step = (4.0 / (n - 1) as f64).min(2.0);
    LINE_WIDTH + ((n - 1 - k.min(n - 1)) as f64 * step).round() as u32
}

// ---------------------------------------------------------------- marks

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stroke {
    Solid,
    Dashed,
    Dotted,
    /// No line: a legend entry for a marker alone.
    None,
}

/// A mark drawn at a data point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    None,
    /// A filled circle.
    Dot,
    /// A filled triangle, point up.
    Triangle,
    /// A filled square.
    Square,
    /// An ×.
    Cross,
    /// A hollow circle, drawn around another marker.
    Ring,
}

/// Dash and gap lengths in pixels of [`Stroke::Dashed`] and [`Stroke::Dotted`].
fn dash_pattern(stroke: Stroke) -> Option<(i32, i32)> {
    match stroke {
        Stroke::Dashed => Some((9, 5)),
        Stroke::Dotted => Some((3, 4)),
        Stroke::Solid | Stroke::None => None,
    }
}

/// Draws a line through `points` (in `area`'s coordinates) with `stroke`.
pub fn draw_line<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    points: Vec<CT::From>,
    stroke: Stroke,
    style: ShapeStyle,
) -> DrawResult<DB>
where
    CT::From: Clone,
{
    match dash_pattern(stroke) {
        _ if stroke == Stroke::None || points.len() < 2 => Ok(()),
        None => area.draw(&PathElement::new(points, style)),
        Some((dash, gap)) => area.draw(&DashedPathElement::new(points, dash, gap, style)),
    }
}

/// Draws `marker` centred on `at` (in `area`'s coordinates), `radius` pixels from its centre.
pub fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    marker: Marker,
    color: RGBColor,
    radius: i32,
) -> DrawResult<DB>
where
    CT::From: Clone,
{
    let here = || EmptyElement::at(at.clone());
    let r = radius;
    match marker {
        Marker::None => Ok(()),
        Marker::Dot => area.draw(&(here() + Circle::new((0, 0), r, color.filled()))),
        Marker::Ring => area.draw(&(here() + Circle::new((0, 0), r, color.stroke_width(2)))),
        // A triangle's area is smaller than its circle's: one pixel more keeps them alike.
        Marker::Triangle => area.draw(&(here() + TriangleMarker::new((0, 0), r + 1, color.filled()))),
        Marker::Square => area.draw(&(here() + Rectangle::new([(-r + 1, -r + 1), (r - 1, r - 1)], color.filled()))),
        Marker::Cross => area.draw(&(here() + Cross::new((0, 0), r, color.stroke_width(3)))),
    }
}

// ---------------------------------------------------------------- legend

/// One entry of a legend: a swatch (a line in some stroke, a marker, or both) and a label.
#[derive(Debug, Clone)]
pub struct LegendEntry {
    pub label: String,
    pub color: RGBColor,
    pub stroke: Stroke,
    pub marker: Marker,
}

impl LegendEntry {
    /// A solid line swatch: one configuration of a figure that draws lines.
    pub fn line(label: impl Into<String>, color: RGBColor) -> Self {
        Self { label: label.into(), color, stroke: Stroke::Solid, marker: Marker::None }
    }

    /// A swatch of `stroke` with `marker` in its middle.
    pub fn styled(label: impl Into<String>, color: RGBColor, stroke: Stroke, marker: Marker) -> Self {
        Self { label: label.into(), color, stroke, marker }
    }
}

const SWATCH: i32 = 26;
const LEGEND_ROW: i32 = 24;
const LEGEND_GAP: i32 = 28;

/// Draws a legend across the top of `area`, wrapping into as many centred rows as it needs, and
/// returns the area below it. A strip above the panels never hides data, however many
/// configurations there are, and one legend serves every panel of a figure.
pub fn legend_strip<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    if entries.is_empty() {
        return Ok(area.clone());
    }
    let style = text(15);
    let (width, _) = area.dim_in_pixel();
    let usable = width as i32 - 40;
    let mut rows: Vec<Vec<(usize, i32)>> = vec![Vec::new()];
    let mut row_width = 0;
    for (i, e) in entries.iter().enumerate() {
        let (tw, _) = area.estimate_text_size(&e.label, &style)?;
        let w = SWATCH + 6 + tw as i32;
        let needed = if row_width == 0 { w } else { row_width + LEGEND_GAP + w };
        if needed > usable && row_width > 0 {
            rows.push(Vec::new());
            row_width = w;
        } else {
            row_width = needed;
        }
        rows.last_mut().expect("never empty").push((i, w));
    }
    let height = rows.len() as i32 * LEGEND_ROW + 8;
    let (strip, rest) = area.split_vertically(height);
    for (r, row) in rows.iter().enumerate() {
        let total: i32 = row.iter().map(|(_, w)| w).sum::<i32>() + LEGEND_GAP * (row.len() as i32 - 1);
        let mut x = (width as i32 - total) / 2;
        let y = r as i32 * LEGEND_ROW + LEGEND_ROW / 2;
        for &(i, w) in row {
            let e = &entries[i];
            draw_line(&strip, vec![(x, y), (x + SWATCH, y)], e.stroke, e.color.stroke_width(3))?;
            draw_marker(&strip, (x + SWATCH / 2, y), e.marker, e.color, 5)?;
            strip.draw_text(&e.label, &style.pos(Pos::new(HPos::Left, VPos::Center)), (x + SWATCH + 6, y))?;
            x += w + LEGEND_GAP;
        }
    }
    Ok(rest)
}

/// A grey note in the middle of an area that has nothing to plot.
pub fn no_data<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, message: &str) -> DrawResult<DB> {
    let (w, h) = area.dim_in_pixel();
    area.draw_text(message, &text(18).color(&GREY_TEXT).pos(Pos::new(HPos::Center, VPos::Center)), (w as i32 / 2, h as i32 / 2))
}

// ---------------------------------------------------------------- axes

/// A logarithmic axis covering some positive values, with ticks at 1-2-5 steps, or at decades
/// with light grid lines at 2 and 5 when the range is wide.
#[derive(Debug, Clone, PartialEq)]
pub struct LogAxis {
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
    pub light: Vec<f64>,
}

impl LogAxis {
    /// The axis for `values`: zeros, negatives and non-finite values are ignored (a log axis
    /// cannot show them; [`LogAxis::clamp`] pins them to the bottom). `None` when nothing is left.
    pub fn covering(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let (mut min, mut max) = (f64::INFINITY, 0.0f64);
        for v in values.into_iter().filter(|v| v.is_finite() && *v > 0.0) {
            min = min.min(v);
            max = max.max(v);
        }
        if max <= 0.0 {
            return None;
        }
        let lo = step_down(min);
        let mut hi = step_up(max);
        if hi <= lo {
            hi = step_up(lo * 1.01);
        }
        Some(Self::between(lo, hi))
    }

    /// An axis for markers rather than lines: from a little below the smallest of `values` to a
    /// little above the largest (by `factor`, e.g. 1.15), so a marker at either end is not cut in
    /// half by the frame. Ticks stay at round values inside. `None` as for [`LogAxis::covering`].
    pub fn padded(values: impl IntoIterator<Item = f64>, factor: f64) -> Option<Self> {
        let (mut min, mut max) = (f64::INFINITY, 0.0f64);
        for v in values.into_iter().filter(|v| v.is_finite() && *v > 0.0) {
            min = min.min(v);
            max = max.max(v);
        }
        (max > 0.0).then(|| Self::between(min / factor, max * factor))
    }

    /// The axis from `lo` to `hi` (both positive).
    pub fn between(lo: f64, hi: f64) -> Self {
        let decades = (hi / lo).log10();
        // A decade or so would leave three or four ticks at 1-2-5; every digit reads better.
        let mantissas: &[f64] = if decades > 3.2 {
            &[1.0]
        } else if decades < 1.3 {
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        } else {
            &[1.0, 2.0, 5.0]
        };
        let inside = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
        let (mut ticks, mut light) = (Vec::new(), Vec::new());
        let first = lo.log10().floor() as i32;
        let last = hi.log10().ceil() as i32;
        for e in first..=last {
            let decade = 10f64.powi(e);
            for m in 1..=9 {
                let v = m as f64 * decade;
                if !inside(v) {
                    continue;
                }
                if mantissas.contains(&(m as f64)) {
                    ticks.push(v);
                } else if mantissas.len() == 1 && (m == 2 || m == 5) {
                    // Decade ticks alone: faint lines at 2 and 5 help read between them.
                    light.push(v);
                }
            }
        }
        Self { lo, hi, ticks, light }
    }

    /// Keeps a value on the axis: zeros (and anything below) sit on the bottom edge.
    pub fn clamp(&self, v: f64) -> f64 {
        v.clamp(self.lo, self.hi)
    }

    /// The plotters coordinate for this axis.
    pub fn coord(&self) -> WithKeyPoints<LogCoord<f64>> {
        (self.lo..self.hi).log_scale().with_key_points(self.ticks.clone()).with_light_points(self.light.clone())
    }
}

const STEPS: [f64; 4] = [1.0, 2.0, 5.0, 10.0];

/// The largest 1-2-5 step at or below `v`.
fn step_down(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    let m = v / decade;
    STEPS.iter().rev().find(|&&s| s <= m * (1.0 + 1e-9)).copied().unwrap_or(1.0) * decade
}

/// The smallest 1-2-5 step at or above `v`.
fn step_up(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    let m = v / decade;
    STEPS.iter().find(|&&s| s >= m * (1.0 - 1e-9)).copied().unwrap_or(10.0) * decade
}

/// A linear axis from 0 to a bit above `max`, so the top line never touches the frame.
pub fn zero_based(max: f64) -> RangedCoordf64 {
    let top = if max.is_finite() && max > 0.0 { max * 1.08 } else { 1.0 };
    (0.0..top).into()
}

/// The time axis shared by every panel of a figure: 0 to just past the last sample, so a point
/// at the end is not cut in half by the frame.
/// A value per interval as a staircase: flat over each interval `(start, end, value)`, so the
/// first interval starts at 0 and a short last one ends where the window ended. A value taken at
/// an instant (start = end) is a single point.
pub fn steps(points: impl IntoIterator<Item = (f64, f64, f64)>) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for (start, end, v) in points {
        if start < end {
            out.push((start, v));
        }
        out.push((end, v));
    }
    out
}

pub fn time_axis(max_t: f64) -> RangedCoordf64 {
    let end = if max_t.is_finite() && max_t > 0.0 { max_t * 1.02 } else { 1.0 };
    (0.0..end).into()
}

/// Tick label of a time axis in seconds: `0`, `5`, `2.5`.
pub fn seconds_tick(v: &f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

/// Tick label of a latency axis whose values are µs: `50 µs`, `1 ms`, `200 ns`.
pub fn latency_tick(v: &f64) -> String {
    crate::format::latency_us(*v)
}

/// Dashed vertical lines at a ramp's stage boundaries, from `y.0` to `y.1` (in the chart's
/// coordinates), under the data.
pub fn stage_marks<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    marks: &[f64],
    y: (f64, f64),
) -> DrawResult<DB> {
    let style = RGBColor(90, 90, 90).stroke_width(1);
    for &x in marks {
        chart.draw_series(DashedLineSeries::new([(x, y.0), (x, y.1)], 6, 4, style))?;
    }
    Ok(())
}

/// The shade of intervals in which no message came back.
pub const SILENT: RGBColor = RGBColor(240, 200, 192);

/// Slack when comparing interval bounds (they are written in µs).
pub const GAP_S: f64 = 1e-3;

/// The spans of the measured window in which no trial of `c` received a single reply: between
/// two latency points, before the first and after the last (up to the end of the throughput
/// rows, which every interval has).
pub fn silent_spans(c: &ConfigSeries) -> Vec<(f64, f64)> {
    let end = c.throughput.iter().map(|b| b.t_s).fold(0.0, f64::max);
    let mut spans = Vec::new();
    let mut at = 0.0;
    for p in &c.latency {
        if p.start_s > at + GAP_S {
            spans.push((at, p.start_s));
        }
        at = at.max(p.t_s);
    }
    if end > at + GAP_S {
        spans.push((at, end));
    }
    spans
}

/// The stage boundaries the configurations shown share (the first one's that has any).
pub fn shared_marks<'a>(configs: impl IntoIterator<Item = &'a ConfigSeries>) -> Vec<f64> {
    configs.into_iter().find(|c| !c.stage_bounds_s.is_empty()).map_or_else(Vec::new, |c| c.stage_bounds_s.clone())
}

// ---------------------------------------------------------------- median lines with ranges

/// A linear chart of one quantity over time: per configuration, the median over trials as a line
/// and the min–max range over trials as a light band behind it (only where trials disagree).
pub struct BandChart<'a> {
    pub caption: Option<&'a str>,
    /// Empty for an upper panel whose time axis the panel below already describes.
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub y_tick: &'a dyn Fn(&f64) -> String,
    /// (colour, points) per configuration.
    pub series: Vec<(RGBColor, &'a [BandPoint])>,
    /// Shared across panels so their time axes line up.
    pub max_t: f64,
    /// Instants to mark with a vertical line (a ramp's stage boundaries), in seconds.
    pub marks: Vec<f64>,
}

impl BandChart<'_> {
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let max_y = self.series.iter().flat_map(|(_, s)| s.iter().map(|p| p.max)).fold(0.0, f64::max);
        let mut builder = ChartBuilder::on(area);
        if let Some(c) = self.caption {
            builder.caption(c, text(17));
        }
        let mut chart = builder
            .margin(8)
            .margin_right(28)
            .x_label_area_size(if self.x_desc.is_empty() { 26 } else { 44 })
            .y_label_area_size(76)
            .build_cartesian_2d(time_axis(self.max_t), zero_based(max_y))?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .x_label_formatter(&seconds_tick)
            .y_label_formatter(self.y_tick)
            .x_labels(10)
            .y_labels(8)
            .label_style(text(TICK_FONT))
            .axis_desc_style(text(DESC_FONT))
            .bold_line_style(bold_grid())
            .light_line_style(light_grid())
            .max_light_lines(1)
            .draw()?;
        stage_marks(&mut chart, &self.marks, (0.0, max_y * 1.05))?;
        // Bands first, so no band covers another configuration's line.
        for (color, points) in &self.series {
            if points.len() > 1 && points.iter().any(|p| p.max > p.min) {
                let lower = steps(points.iter().map(|p| (p.start_s, p.t_s, p.min)));
                let upper = steps(points.iter().map(|p| (p.start_s, p.t_s, p.max)));
                let outline: Vec<(f64, f64)> = lower.into_iter().chain(upper.into_iter().rev()).collect();
                chart.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.18).filled())))?;
            }
        }
        let n = self.series.len();
        for (k, (color, points)) in self.series.iter().enumerate() {
            // Intervals draw as steps; a lone sample taken at an instant needs a dot to be seen.
            let dots = if points.len() < 3 && points.iter().all(|p| p.start_s >= p.t_s) { 3 } else { 0 };
            let style = color.stroke_width(line_width(k, n));
            chart.draw_series(LineSeries::new(steps(points.iter().map(|p| (p.start_s, p.t_s, p.median))), style).point_size(dots))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_draw_as_steps_from_the_window_start() {
        // A 2.5 s window of 1 s intervals: the line covers 0 to 2.5 s, flat within each interval.
        let s = steps([(0.0, 1.0, 10.0), (1.0, 2.0, 20.0), (2.0, 2.5, 5.0)]);
        assert_eq!(s, [(0.0, 10.0), (1.0, 10.0), (1.0, 20.0), (2.0, 20.0), (2.0, 5.0), (2.5, 5.0)]);
        // Samples at instants stay points.
        assert_eq!(steps([(1.0, 1.0, 3.0), (2.0, 2.0, 4.0)]), [(1.0, 3.0), (2.0, 4.0)]);
    }

    #[test]
    fn log_axis_snaps_to_1_2_5_steps() {
        let a = LogAxis::covering([0.0, 42.0, 3_100.0]).unwrap();
        assert_eq!((a.lo, a.hi), (20.0, 5_000.0));
        assert_eq!(a.ticks, vec![20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0]);
        assert!(a.light.is_empty());
        assert_eq!(a.clamp(0.0), 20.0);
    }

    #[test]
    fn wide_log_axes_tick_each_decade() {
        let a = LogAxis::covering([1.5, 45_000.0]).unwrap();
        assert_eq!((a.lo, a.hi), (1.0, 50_000.0));
        assert_eq!(a.ticks, vec![1.0, 10.0, 100.0, 1_000.0, 10_000.0]);
        assert_eq!(a.light[..3], [2.0, 5.0, 20.0]);
    }

    #[test]
    fn padded_axes_leave_room_for_markers_and_tick_every_digit_when_narrow() {
        let a = LogAxis::padded([2_500.0, 0.0, 10_000.0], 1.15).unwrap();
        assert!(a.lo < 2_500.0 && a.hi > 10_000.0, "{a:?}");
        assert_eq!(a.ticks, vec![3_000.0, 4_000.0, 5_000.0, 6_000.0, 7_000.0, 8_000.0, 9_000.0, 10_000.0]);
        assert_eq!(LogAxis::padded([0.0], 1.15), None);
    }

    #[test]
    fn narrow_and_empty_log_axes() {
        let a = LogAxis::covering([100.0, 100.0]).unwrap();
        assert!(a.hi > a.lo && a.ticks.len() >= 2, "{a:?}");
        assert_eq!(LogAxis::covering([0.0, f64::NAN]), None);
    }

    #[test]
    fn earlier_lines_are_wider_so_equal_lines_stay_visible() {
        assert_eq!(line_width(0, 1), LINE_WIDTH);
        assert_eq!((line_width(0, 2), line_width(1, 2)), (4, 2));
        assert_eq!((line_width(0, 3), line_width(1, 3), line_width(2, 3)), (6, 4, 2));
        assert_eq!((line_width(0, 8), line_width(7, 8)), (6, 2));
        assert!((0..8).map(|k| line_width(k, 8)).collect::<Vec<_>>().windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn sweep_shades_run_from_light_to_dark_in_one_hue() {
        let base = config_color(0);
        assert_eq!(shade(base, 0, 1), base);
        let steps: Vec<RGBColor> = (0..5).map(|k| shade(base, k, 5)).collect();
        let lightness = |c: &RGBColor| u32::from(c.0) + u32::from(c.1) + u32::from(c.2);
        assert!(steps.windows(2).all(|w| lightness(&w[0]) > lightness(&w[1])), "{steps:?}");
        // Neither end reaches white or black, and blue stays the strongest channel.
        assert!(lightness(&steps[0]) < 3 * 240 && lightness(&steps[4]) > 3 * 30, "{steps:?}");
        assert!(steps.iter().all(|c| c.2 >= c.0 && c.2 >= c.1), "{steps:?}");
    }

    #[test]
    fn tick_labels_are_human() {
        assert_eq!(latency_tick(&1_000.0), "1 ms");
        assert_eq!(latency_tick(&50.0), "50 µs");
        assert_eq!(latency_tick(&0.2), "200 ns");
        assert_eq!(seconds_tick(&5.0), "5");
        assert_eq!(seconds_tick(&2.5), "2.5");
    }

    #[test]
    fn the_bundled_font_registers() {
        ensure_font().unwrap();
        ensure_font().unwrap();
    }
}
