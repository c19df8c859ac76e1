//! The data behind each figure, computed from a loaded run: pure, so it is tested without drawing.
//!
//! Trials of a configuration are combined the lossless way wherever histograms exist: the k-th
//! second of every trial is added into one histogram and percentiles are read from the sum.
//! Counts that are not histograms (throughput, CPU, memory) are shown as the median over trials
//! with the min–max range as a band.
//!
//! Runs of several configurations that belong together get their own series: a payload-size
//! sweep ([`size_sweep`]), a rate sweep ([`rate_sweep`], from the manifest's `group` and
//! `asked_rate`) and a capacity search ([`capacity`], from each trial's `capacity.json`).

use hdrhistogram::Histogram;
use wsbench_core::hist::{self, LatencySummary};
use wsbench_core::result::{CapacityResult, LoadgenSummary, SearchOver};
use wsbench_core::slo::Slo;
use wsbench_core::warning::WarningKind;

use crate::load::{ConfigRun, Run, Trial};
use crate::merge;
use crate::stats::{self, Spread};

/// Latency percentiles of one second, combined over trials, in µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyPoint {
    /// Start of the interval, seconds since the measured window began.
    pub start_s: f64,
    /// End of the interval.
    pub t_s: f64,
    pub p50: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub count: u64,
}

/// One point of a percentile-distribution curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantilePoint {
    /// `1 / (1 - quantile)`: 2 at the median, 100 at p99, 1000 at p99.9.
    pub x: f64,
    pub us: f64,
}

/// A value over trials at one time: the median with its min–max range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandPoint {
    /// Start of the interval the value covers (equal to `t_s` for a sample taken at an instant).
    pub start_s: f64,
    /// End of the interval, or the instant of the sample.
    pub t_s: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// Rows of the latency heat map per decade of latency: fine enough that a pause's smear and the
/// body stay apart, coarse enough that a second with a few thousand messages fills its rows.
pub const HEAT_BINS_PER_DECADE: i32 = 16;

/// The latency range of heat-map row `bin`, in µs: `[10^(bin/B), 10^((bin+1)/B))` for
/// `B =` [`HEAT_BINS_PER_DECADE`]. Rows are anchored to decades, so every configuration's rows
/// line up without agreeing on a range first.
pub fn heat_bin_range(bin: i32) -> (f64, f64) {
    let b = f64::from(HEAT_BINS_PER_DECADE);
    (10f64.powf(f64::from(bin) / b), 10f64.powf(f64::from(bin + 1) / b))
}

/// The heat-map row of a latency in µs (positive).
pub fn heat_bin(us: f64) -> i32 {
    (us.log10() * f64::from(HEAT_BINS_PER_DECADE)).floor() as i32
}

/// One interval of the heat map: how that interval's messages spread over latency rows.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatColumn {
    /// Seconds since the measured window began.
    pub start_s: f64,
    pub end_s: f64,
    /// Messages in the interval.
    pub total: u64,
    /// (row, messages) for every row that has messages, ascending.
    pub cells: Vec<(i32, u64)>,
}

/// One point of a cumulative distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CdfPoint {
    pub us: f64,
    /// Share of messages at or below `us`, 0–100.
    pub percent: f64,
}

/// Everything the figures show about one configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigSeries {
    pub name: String,
    /// Per second, from `latency.hlog` of every usable trial added by interval index.
    pub latency: Vec<LatencyPoint>,
    /// From the whole run's histogram (all usable trials added).
    pub distribution: Vec<QuantilePoint>,
    /// Messages in that histogram.
    pub count: u64,
    /// Echoes received per second, from `intervals.csv`.
    pub throughput: Vec<BandPoint>,
    /// Server CPU in % of one core, from `processes.csv`.
    pub server_cpu_pct: Vec<BandPoint>,
    /// Server resident memory in MiB, from `processes.csv`.
    pub server_rss_mib: Vec<BandPoint>,
    /// Per interval, from `latency.hlog` of every usable trial added by interval index.
    pub heatmap: Vec<HeatColumn>,
    /// From the whole run's histogram.
    pub cdf: Vec<CdfPoint>,
    /// Set when the configuration is a point of a rate sweep, so figures can draw the points of
    /// one sweep as shades of one colour.
    pub family: Option<Family>,
    /// On a ramp (`stages`): where one stage gives way to the next, in seconds since the
    /// measured window began (over-time figures draw them as vertical lines).
    pub stage_bounds_s: Vec<f64>,
}

/// A configuration's place in a rate sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Index of the sweep among the run's sweeps, in manifest order.
    pub group: usize,
    /// The sweep's colour (see [`SweepGroup::color_index`]).
    pub color_index: usize,
    /// Position of the point in its sweep by asked rate, from 0 (the lowest rate).
    pub rank: usize,
    /// Points in the sweep.
    pub size: usize,
}

impl ConfigSeries {
    pub fn of(config: &ConfigRun) -> Self {
        let used: Vec<&Trial> = config.trials.iter().filter(|t| stats::usable(t)).collect();

        let per_second = merge::add_by_index(used.iter().map(|t| t.latency.as_slice()));
        let latency = per_second
            .iter()
            .filter(|iv| !iv.histogram.is_empty())
            .map(|iv| {
                let q = |p| iv.histogram.value_at_quantile(p) as f64 / 1e3;
                LatencyPoint {
                    start_s: iv.start.as_secs_f64(),
                    t_s: (iv.start + iv.duration).as_secs_f64(),
                    p50: q(0.5),
                    p99: q(0.99),
                    p99_9: q(0.999),
                    max: iv.histogram.max() as f64 / 1e3,
                    count: iv.histogram.len(),
                }
            })
            .collect();
        let whole = hist::total(&per_second);

        // Each row covers the time since the previous row's end (the window's start for the first).
        let throughput = bands(
            used.iter().map(|t| {
                let ends = t.intervals.iter().map(|r| r.elapsed_s);
                let starts = std::iter::once(0.0).chain(ends.clone());
                starts.zip(t.intervals.iter()).map(|(start, r)| (start, r.elapsed_s, r.throughput)).collect()
            }),
        );
        let samples = |f: fn(&wsbench_core::result::ProcessSample) -> f64| {
            bands(used.iter().map(|t| {
                // Samples at an instant: each covers no interval.
                let mut v: Vec<(f64, f64, f64)> = t.server_samples().map(|s| (s.elapsed_s, s.elapsed_s, f(s))).collect();
                v.sort_by(|a, b| a.1.total_cmp(&b.1));
                v
            }))
        };
        Self {
            name: config.name.clone(),
            latency,
            heatmap: per_second.iter().filter(|iv| !iv.histogram.is_empty()).map(heat_column).collect(),
            cdf: cdf(&whole),
            distribution: distribution(&whole),
            count: whole.len(),
            throughput,
            server_cpu_pct: samples(|s| s.cpu_pct),
            server_rss_mib: samples(|s| s.rss_bytes as f64 / (1024.0 * 1024.0)),
            family: None,
            stage_bounds_s: used.iter().find_map(|t| t.summary.as_ref()).map_or_else(Vec::new, |s| stage_bounds_s(&s.config.stages)),
        }
    }

    /// Every configuration of `run` in manifest order, each placed in its rate sweep if it is a
    /// point of one.
    pub fn of_run(run: &Run) -> Vec<Self> {
        let mut all: Vec<Self> = run.configs.iter().map(Self::of).collect();
        for (g, group) in rate_sweep(run).iter().enumerate() {
            for (rank, point) in group.points.iter().enumerate() {
                if let Some(c) = all.iter_mut().find(|c| c.name == point.name) {
                    c.family = Some(Family { group: g, color_index: group.color_index, rank, size: group.points.len() });
                }
            }
        }
        all
    }
}

/// Where each stage but the last ends, in seconds since the measured window began; a step (a
/// stage of no duration) shares its bound with the stage before it, so it is drawn once.
pub fn stage_bounds_s(stages: &[wsbench_core::plan::Stage]) -> Vec<f64> {
    let mut t = 0.0;
    let mut bounds: Vec<f64> = Vec::new();
    for st in stages.iter().take(stages.len().saturating_sub(1)) {
        t += st.duration.as_secs_f64();
        if t > 0.0 && bounds.last() != Some(&t) {
            bounds.push(t);
        }
    }
    bounds
}

/// The percentile curve of a histogram, HdrHistogram style: points at quantiles that get denser
/// towards the tail (ten per halving of the remaining distance to 100 %). Quantile 1 would sit at
/// an infinite x; instead the curve runs flat at the maximum out to `x = count`, the deepest
/// percentile the data resolves (every percentile past the last bucket boundary is the maximum).
pub fn distribution(h: &Histogram<u64>) -> Vec<QuantilePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<QuantilePoint> = h
        .iter_quantiles(10)
        .filter(|v| v.quantile_iterated_to() < 1.0)
        .map(|v| QuantilePoint { x: 1.0 / (1.0 - v.quantile_iterated_to()), us: v.value_iterated_to() as f64 / 1e3 })
        .collect();
    // The iterator can revisit a quantile; keep x strictly increasing for drawing.
    points.dedup_by(|b, a| b.x <= a.x);
    let (count, max) = (h.len() as f64, h.max() as f64 / 1e3);
    if points.last().is_none_or(|p| p.x < count) {
        points.push(QuantilePoint { x: count, us: max });
    }
    points
}

/// One interval's histogram as heat-map cells.
fn heat_column(iv: &hist::LogInterval) -> HeatColumn {
    let h = &iv.histogram;
    let mut cells: Vec<(i32, u64)> = Vec::new();
    for v in h.iter_recorded() {
        // The bucket's middle value, so a bucket that straddles a row boundary lands where most of it is.
        let us = (h.median_equivalent(v.value_iterated_to()) as f64 / 1e3).max(1e-3);
        let bin = heat_bin(us);
        match cells.last_mut() {
            Some((b, n)) if *b == bin => *n += v.count_at_value(),
            _ => cells.push((bin, v.count_at_value())),
        }
    }
    let start_s = iv.start.as_secs_f64();
    HeatColumn { start_s, end_s: start_s + iv.duration.as_secs_f64(), total: h.len(), cells }
}

/// The cumulative distribution of a histogram: one point per recorded bucket, thinned so that
/// consecutive points differ by at least 0.5 % in latency or 0.1 percentage points in share
/// (the curve looks the same and an SVG of it stays small). The first and last points are kept.
pub fn cdf(h: &Histogram<u64>) -> Vec<CdfPoint> {
    let total = h.len();
    if total == 0 {
        return Vec::new();
    }
    let mut points: Vec<CdfPoint> = Vec::new();
    let mut seen = 0u64;
    let mut pending: Option<CdfPoint> = None;
    for v in h.iter_recorded() {
        seen += v.count_at_value();
        let p = CdfPoint { us: h.highest_equivalent(v.value_iterated_to()) as f64 / 1e3, percent: 100.0 * seen as f64 / total as f64 };
        match points.last() {
            Some(last) if p.us < last.us * 1.005 && p.percent - last.percent < 0.1 => pending = Some(p),
            _ => {
                points.push(p);
                pending = None;
            }
        }
    }
    points.extend(pending);
    points
}

/// One configuration of a payload-size sweep: its message size and latency over trials.
#[derive(Debug, Clone, PartialEq)]
pub struct SizePoint {
    pub name: String,
    /// Message size in bytes, header included.
    pub size: u64,
    /// Median over trials with min–max, µs.
    pub p50: Spread,
    pub p99: Spread,
    /// Echoes per second, median over trials with min–max.
    pub throughput: Option<Spread>,
}

/// The latency model of a size sweep, `t = t0 + size / bandwidth`, fitted to the p50 medians; with
/// a knee where the per-byte cost changes when one straight line does not hold (a message that no
/// longer fits the socket buffers costs more per byte than one that does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeFit {
    /// The fixed cost of a message, µs (the line's value at size 0).
    pub t0_us: f64,
    /// Bytes per µs the latency grows by at the largest sizes (past the knee, if there is one), as
    /// MB/s (10^6 bytes per second); `None` when latency did not grow with size there.
    pub bandwidth_mb_s: Option<f64>,
    /// Where the per-byte cost changes, when the data show that it does.
    pub knee: Option<Knee>,
}

/// The bend of a two-segment size fit: below `size_bytes` latency grows at `below_mb_s`, above
/// it at the fit's `bandwidth_mb_s`; the two segments meet at the knee.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knee {
    pub size_bytes: f64,
    /// `None`: latency did not grow with size below the knee.
    pub below_mb_s: Option<f64>,
}

/// Least squares with weights: the coefficients of `basis` that best give `y`, or `None` when the
/// basis does not tell them apart on these points. Normal equations, solved by elimination with
/// partial pivoting (at most three unknowns here).
fn weighted_least_squares<const N: usize>(rows: &[([f64; N], f64, f64)]) -> Option<[f64; N]> {
    let mut a = [[0.0; N]; N];
    let mut b = [0.0; N];
    for (basis, y, w) in rows {
        for i in 0..N {
            b[i] += w * basis[i] * y;
            for j in 0..N {
                a[i][j] += w * basis[i] * basis[j];
            }
        }
    }
    let scale = (0..N).map(|i| a[i][i]).fold(0.0, f64::max);
    for col in 0..N {
        let pivot = (col..N).max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs()))?;
        if a[pivot][col].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col];
        for r in (0..N).filter(|&r| r != col) {
            let f = a[r][col] / pivot_row[col];
            for (x, p) in a[r].iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            b[r] -= f * b[col];
        }
    }
    Some(std::array::from_fn(|i| b[i] / a[i][i]))
}

impl SizeFit {
    /// Least squares weighted by 1/t², so every size counts by its relative error as on the
    /// figure's log axes, rather than the largest sizes deciding everything. One straight line,
    /// or two segments meeting at a knee (at one of the sizes, with at least two sizes on either
    /// side and a steeper segment above it) when that fits better by the Bayesian information
    /// criterion, which charges the knee for its two extra parameters: a sweep whose largest
    /// messages cost more per byte then gets the bandwidth they had, not that of the middle sizes.
    pub fn of(points: &[(f64, f64)]) -> Option<Self> {
        let mut pts: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite() && *y > 0.0).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.len() < 2 {
            return None;
        }
        // Sizes in units of the largest keep the normal equations well conditioned.
        let unit = pts.iter().map(|p| p.0.abs()).fold(0.0, f64::max).max(1.0);
        let mb_s = |slope_per_unit: f64| (slope_per_unit > 0.0).then(|| unit / slope_per_unit);
        let n = pts.len() as f64;
        // Residuals below 0.01 % are below any latency measurement's precision: a knee must not win
        // by fitting rounding.
        let cost = |sse: f64, params: f64| n * (sse / n).max(1e-8).ln() + params * n.ln();
        let sse = |f: &dyn Fn(f64) -> f64| pts.iter().map(|(x, y)| ((f(*x) - y) / y).powi(2)).sum::<f64>();

        let line: Vec<([f64; 2], f64, f64)> = pts.iter().map(|(x, y)| ([1.0, x / unit], *y, 1.0 / (y * y))).collect();
        let [t0, slope] = weighted_least_squares(&line)?;
        let straight = Self { t0_us: t0, bandwidth_mb_s: mb_s(slope), knee: None };
        let mut best = (cost(sse(&|x| t0 + slope * x / unit), 2.0), straight);

        // A knee needs two sizes on each side to be told from noise.
        for k in 1..pts.len().saturating_sub(2) {
            let at = pts[k].0;
            let rows: Vec<([f64; 3], f64, f64)> =
                pts.iter().map(|(x, y)| ([1.0, x / unit, ((x - at) / unit).max(0.0)], *y, 1.0 / (y * y))).collect();
            let Some([mut t0, mut below, mut extra]) = weighted_least_squares(&rows) else { continue };
            let mut params = 4.0;
            if below < 0.0 {
                // Latency does not fall with size: flat below the knee.
                let rows: Vec<([f64; 2], f64, f64)> = rows.iter().map(|([one, _, past], y, w)| ([*one, *past], *y, *w)).collect();
                let Some([t, e]) = weighted_least_squares(&rows) else { continue };
                (t0, below, extra, params) = (t, 0.0, e, 3.0);
            }
            let above = below + extra;
            if extra <= 0.0 {
                continue;
            }
            let c = cost(sse(&|x| t0 + below * x / unit + extra * ((x - at) / unit).max(0.0)), params);
            if c < best.0 {
                let knee = Knee { size_bytes: at, below_mb_s: mb_s(below) };
                best = (c, Self { t0_us: t0, bandwidth_mb_s: mb_s(above), knee: Some(knee) });
            }
        }
        Some(best.1)
    }

    /// The model's latency at `size` bytes, µs.
    pub fn at(&self, size: f64) -> f64 {
        let per_byte = |bw: Option<f64>| bw.map_or(0.0, |bw| 1.0 / bw);
        match self.knee {
            None => self.t0_us + size * per_byte(self.bandwidth_mb_s),
            Some(k) => {
                let below = size.min(k.size_bytes) * per_byte(k.below_mb_s);
                self.t0_us + below + (size - k.size_bytes).max(0.0) * per_byte(self.bandwidth_mb_s)
            }
        }
    }
}

/// The configurations of a run that differ only in message size: one line of the size figure.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeGroup {
    /// What the configurations share, from their names (`zero-alloc` of `zero-alloc@1020B`), or
    /// empty when the whole run is one sweep.
    pub name: String,
    /// Sorted by size.
    pub points: Vec<SizePoint>,
    pub fit: Option<SizeFit>,
    /// The sweep's bulk-transfer configuration, when the run has one: a direct measurement of
    /// the bandwidth the fit infers.
    pub bulk: Option<BulkPoint>,
}

/// A size sweep's bulk transfer: one connection streaming `size`-byte messages closed loop with
/// a deep pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkPoint {
    pub name: String,
    pub size: u64,
    pub in_flight: u64,
    /// Payload bytes per second each way (echoes per second × size), as MB/s (10^6 bytes), median
    /// over trials with min–max.
    pub mb_s: Spread,
}

/// What a bulk configuration shares with the size sweep it cross-checks: its server, and its
/// load but for what the bulk transfer sets itself.
fn bulk_key(e: &wsbench_core::result::ConfigEntry) -> Option<(serde_json::Value, serde_json::Value)> {
    let mut load = e.load.clone();
    let o = load.as_object_mut()?;
    for k in ["size", "connections", "processes", "in_flight", "rate", "bulk"] {
        o.remove(k);
    }
    Some((e.server.clone(), load))
}

fn is_bulk(e: &wsbench_core::result::ConfigEntry) -> bool {
    e.load.get("bulk").and_then(serde_json::Value::as_bool) == Some(true)
}

/// The payload-size sweeps of a run: configurations grouped by everything but `size` (same
/// server, same load apart from size, same rate), each group with at least two sizes. A group
/// never mixes two effects; configurations without usable trials are left out.
pub fn size_sweep(run: &crate::load::Run) -> Vec<SizeGroup> {
    let key = |e: &wsbench_core::result::ConfigEntry| {
        let mut load = e.load.clone();
        let size = load.as_object_mut()?.remove("size")?.as_u64()?;
        Some((size, (e.server.clone(), load, e.group.clone(), e.asked_rate.map(f64::to_bits))))
    };
    let mut groups: Vec<(_, Vec<SizePoint>, &wsbench_core::result::ConfigEntry)> = Vec::new();
    let mut bulks = Vec::new();
    for (entry, config) in run.manifest.configs.iter().zip(&run.configs) {
        if is_bulk(entry) {
            bulks.push((entry, config));
            continue;
        }
        let Some((size, rest)) = key(entry) else { continue };
        let s = stats::ConfigStats::of(config);
        let (Some(p50), Some(p99)) = (s.p50_us, s.p99_us) else { continue };
        let point = SizePoint { name: config.name.clone(), size, p50, p99, throughput: s.throughput };
        match groups.iter_mut().find(|(k, _, _)| *k == rest) {
            Some((_, points, _)) => points.push(point),
            None => groups.push((rest, vec![point], entry)),
        }
    }
    let whole_run = groups.len() == 1;
    let bulk_of = |entry: &wsbench_core::result::ConfigEntry| {
        let (e, config) = bulks.iter().find(|(b, _)| bulk_key(b).is_some() && bulk_key(b) == bulk_key(entry))?;
        let size = e.load.get("size")?.as_u64()?;
        let used = config.trials.iter().filter(|t| stats::usable(t));
        let mb_s = Spread::of(used.filter_map(|t| t.summary.as_ref()).map(|s| s.throughput_msgs_per_s * size as f64 / 1e6))?;
        Some(BulkPoint { name: config.name.clone(), size, in_flight: e.load.get("in_flight").and_then(serde_json::Value::as_u64).unwrap_or(0), mb_s })
    };
    groups
        .into_iter()
        .filter_map(|(_, mut points, entry)| {
            points.sort_by_key(|p| p.size);
            let mut sizes: Vec<u64> = points.iter().map(|p| p.size).collect();
            sizes.dedup();
            if sizes.len() < 2 {
                return None;
            }
            let fit = SizeFit::of(&points.iter().map(|p| (p.size as f64, p.p50.median)).collect::<Vec<_>>());
            let name = if whole_run { String::new() } else { shared_name(&points) };
            Some(SizeGroup { name, points, fit, bulk: bulk_of(entry) })
        })
        .collect()
}

/// The part of a size sweep's configuration names that is not about size: `zero@1020B` →
/// `zero`, `engine=zero-alloc,size=64` → `engine=zero-alloc`.
fn shared_name(points: &[SizePoint]) -> String {
    let strip = |n: &str| -> String {
        let n = n.split('@').next().unwrap_or(n);
        n.split(',').filter(|t| !t.starts_with("size=")).collect::<Vec<_>>().join(",")
    };
    let first = strip(&points[0].name);
    if !first.is_empty() && points.iter().all(|p| strip(&p.name) == first) {
        first
    } else {
        points.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

pub use wsbench_core::slo::ACHIEVED_SHARE;

/// One point of a rate sweep: a configuration run at one open-loop rate, over its trials.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// The configuration's name, `<group>@<rate>`.
    pub name: String,
    /// The total rate asked for, msgs/s.
    pub asked: f64,
    /// Echoes received per second (median over usable trials, with range); `None` when no
    /// trial of the point has a summary.
    pub achieved: Option<Spread>,
    /// Latency from the intended send time, µs, median over trials with range.
    pub p50: Option<Spread>,
    pub p99: Option<Spread>,
    pub p99_9: Option<Spread>,
    /// The median achieved rate fell short of [`ACHIEVED_SHARE`] of the asked rate: the server
    /// (or the load generator) could not keep up. `false` when nothing was measured.
    pub overloaded: bool,
    /// The first overloaded point of its sweep, by asked rate.
    pub knee: bool,
    /// Usable trials, and trials in all.
    pub trials_used: usize,
    pub trials_total: usize,
    /// Every kind of load-generator warning raised in any usable trial, in the order first seen.
    pub warnings: Vec<WarningKind>,
}

/// The points of one rate sweep, by ascending asked rate.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepGroup {
    /// The configuration the sweep was written for (`group` in the manifest).
    pub name: String,
    /// The colour of the sweep, as a palette position: the first one that no configuration
    /// outside a sweep takes by its own position in the manifest, so a run that mixes sweeps and
    /// single configurations never draws two of them in one colour.
    pub color_index: usize,
    pub points: Vec<SweepPoint>,
}

impl SweepGroup {
    /// The first overloaded point, if the sweep reached one.
    pub fn knee(&self) -> Option<&SweepPoint> {
        self.points.iter().find(|p| p.knee)
    }
}

/// The rate sweeps of a run: configurations the manifest marks with a `group`, gathered per
/// group in the order groups first appear, points sorted by asked rate. The asked rate is the
/// manifest's, or else the one the load generator recorded. Empty when the run is no sweep.
pub fn rate_sweep(run: &Run) -> Vec<SweepGroup> {
    let mut groups: Vec<SweepGroup> = Vec::new();
    for (entry, config) in run.manifest.configs.iter().zip(&run.configs) {
        let Some(group) = &entry.group else { continue };
        let used: Vec<&Trial> = config.trials.iter().filter(|t| stats::usable(t)).collect();
        let summaries = || used.iter().filter_map(|t| t.summary.as_ref());
        let asked = entry.asked_rate.or_else(|| summaries().find_map(|s| s.rate.map(|r| r.asked_msgs_per_s)));
        let Some(asked) = asked.filter(|a| a.is_finite() && *a > 0.0) else { continue };
        let lat = |f: fn(&LatencySummary) -> f64| Spread::of(summaries().map(|s| f(&s.latency_us)));
        let achieved = Spread::of(summaries().map(|s| s.throughput_msgs_per_s));
        let mut warnings: Vec<WarningKind> = Vec::new();
        for w in summaries().flat_map(|s| &s.warnings) {
            if !warnings.contains(&w.kind) {
                warnings.push(w.kind);
            }
        }
        let point = SweepPoint {
            name: config.name.clone(),
            asked,
            overloaded: achieved.is_some_and(|a| a.median < ACHIEVED_SHARE * asked),
            achieved,
            p50: lat(|l| l.p50),
            p99: lat(|l| l.p99),
            p99_9: lat(|l| l.p99_9),
            knee: false,
            trials_used: used.len(),
            trials_total: config.trials.len(),
            warnings,
        };
        match groups.iter_mut().find(|g| &g.name == group) {
            Some(g) => g.points.push(point),
            None => groups.push(SweepGroup { name: group.clone(), color_index: 0, points: vec![point] }),
        }
    }
    let taken: Vec<usize> = run.manifest.configs.iter().enumerate().filter(|(_, e)| e.group.is_none()).map(|(i, _)| i).collect();
    let mut free = (0..).filter(|i| !taken.contains(i));
    for g in &mut groups {
        g.color_index = free.next().expect("an unbounded range never ends");
    }
    for g in &mut groups {
        g.points.sort_by(|a, b| a.asked.total_cmp(&b.asked));
        if let Some(knee) = g.points.iter_mut().find(|p| p.overloaded) {
            knee.knee = true;
        }
    }
    groups
}

/// The capacity searches of one configuration: one `capacity.json` per usable trial.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityConfig {
    pub name: String,
    /// Position in the manifest, which fixes the configuration's colour.
    pub index: usize,
    /// The objective as the search wrote it, e.g. `p99 <= 5 ms` (the first trial's).
    pub slo: String,
    /// The same, parsed; `None` when it does not parse (written by another wsbench).
    pub objective: Option<Slo>,
    /// What the searches varied: the rate, or the number of connections.
    pub over: SearchOver,
    /// Capacity over the trials, msgs/s (or connections, for a search over connections):
    /// median with min–max.
    pub capacity: Spread,
    /// (trial number, its search), in trial order.
    pub trials: Vec<(u32, CapacityResult)>,
}

impl CapacityConfig {
    /// Trials whose search narrowed the bracket to the requested precision.
    pub fn converged(&self) -> usize {
        self.trials.iter().filter(|(_, c)| c.converged).count()
    }

    /// Where a probe stood on the searched axis: its asked rate, or its connections.
    pub fn probe_at(&self, p: &wsbench_core::result::CapacityProbe) -> f64 {
        p.position(self.over)
    }

    /// The searched axis in words with its unit, for headers and axis titles.
    pub fn axis_unit(&self) -> &'static str {
        match self.over {
            SearchOver::Rate => "msgs/s",
            SearchOver::Connections => "connections",
        }
    }

    /// The value the objective bounds for one probe, µs; `None` when the probe measured nothing
    /// (its trial failed) or the objective is unknown.
    pub fn probe_value(&self, latency: &LatencySummary) -> Option<f64> {
        let o = self.objective?;
        (latency.count > 0).then(|| o.stat.of(latency))
    }
}

/// The configurations of `run` that searched for their capacity, in manifest order; empty when
/// no trial holds a `capacity.json`. Trials the orchestrator marked failed are left out.
pub fn capacity(run: &Run) -> Vec<CapacityConfig> {
    run.configs
        .iter()
        .enumerate()
        .filter_map(|(index, c)| {
            let trials: Vec<(u32, CapacityResult)> =
                c.trials.iter().filter(|t| stats::usable(t)).filter_map(|t| Some((t.number, t.capacity.clone()?))).collect();
            let over = trials.first()?.1.over;
            let capacity = Spread::of(trials.iter().map(|(_, r)| r.capacity_on_its_axis()))?;
            let slo = trials.first()?.1.slo.clone();
            // A broadcast's objective reads `completion p95 <= 250 ms`; its probes hold that latency.
            let objective = Slo::parse(slo.strip_prefix("completion ").unwrap_or(&slo)).ok();
            Some(CapacityConfig { name: c.name.clone(), index, over, objective, slo, capacity, trials })
        })
        .collect()
}

/// Pairs (time, value) of several trials, combined by index into median and range.
/// (start, end, value) per trial → the median and range of the k-th values over trials.
fn bands(trials: impl Iterator<Item = Vec<(f64, f64, f64)>>) -> Vec<BandPoint> {
    let trials: Vec<Vec<(f64, f64, f64)>> = trials.collect();
    let column = |f: fn(&(f64, f64, f64)) -> f64| -> Vec<Vec<f64>> { trials.iter().map(|t| t.iter().map(f).collect()).collect() };
    // Trials sample at the same cadence from the same start, so the k-th samples belong together;
    // their times differ by jitter only.
    let (starts, ends, values) = (column(|p| p.0), column(|p| p.1), column(|p| p.2));
    stats::spread_by_index(&values)
        .into_iter()
        .zip(stats::spread_by_index(&ends))
        .zip(stats::spread_by_index(&starts))
        .map(|((v, t), s): ((Spread, Spread), Spread)| BandPoint { start_s: s.median, t_s: t.median, median: v.median, min: v.min, max: v.max })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench_core::hist::{new_histogram, record_ns};

    #[test]
    fn distribution_runs_from_the_median_to_the_tail() {
        let mut h = new_histogram();
        for v in 1..=100_000u64 {
            record_ns(&mut h, v * 1_000); // 1 µs .. 100 ms, uniform
        }
        let d = distribution(&h);
        assert!(d.windows(2).all(|w| w[0].x < w[1].x && w[0].us <= w[1].us));
        let at = |x: f64| d.iter().find(|p| p.x >= x).unwrap().us;
        assert!((at(2.0) / 50_000.0 - 1.0).abs() < 0.01, "p50 {}", at(2.0));
        assert!((at(100.0) / 99_000.0 - 1.0).abs() < 0.01, "p99 {}", at(100.0));
        assert_eq!(*d.last().unwrap(), QuantilePoint { x: 100_000.0, us: h.max() as f64 / 1e3 });
        assert!(distribution(&new_histogram()).is_empty());
    }

    #[test]
    fn heat_columns_put_each_message_in_its_decade_row() {
        let mut h = new_histogram();
        for _ in 0..90 {
            record_ns(&mut h, 50_000); // 50 µs
        }
        for _ in 0..10 {
            record_ns(&mut h, 80_000_000); // 80 ms: a pause
        }
        let iv = hist::LogInterval { start: std::time::Duration::from_secs(3), duration: std::time::Duration::from_secs(1), tag: None, histogram: h };
        let c = heat_column(&iv);
        assert_eq!((c.start_s, c.end_s, c.total), (3.0, 4.0, 100));
        assert_eq!(c.cells, vec![(heat_bin(50.0), 90), (heat_bin(80_000.0), 10)]);
        let (lo, hi) = heat_bin_range(heat_bin(50.0));
        assert!(lo <= 50.0 && 50.0 < hi && hi / lo < 1.16, "{lo} {hi}");
        assert_eq!(heat_bin(1.0), 0);
        assert_eq!(heat_bin(10.0), HEAT_BINS_PER_DECADE);
    }

    #[test]
    fn the_cdf_rises_to_one_hundred_percent() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            record_ns(&mut h, v * 1_000);
        }
        let c = cdf(&h);
        assert!(c.windows(2).all(|w| w[0].us < w[1].us && w[0].percent <= w[1].percent));
        assert_eq!(c.last().unwrap().percent, 100.0);
        let median = c.iter().find(|p| p.percent >= 50.0).unwrap();
        assert!((median.us / 5_000.0 - 1.0).abs() < 0.01, "{median:?}");
        assert!(c.len() < 2_000, "thinned: {}", c.len());
        assert!(cdf(&new_histogram()).is_empty());
    }

    #[test]
    fn the_size_fit_recovers_a_fixed_cost_and_a_bandwidth() {
        // 30 µs fixed, 1,000 MB/s (1,000 bytes per µs), over the seed's sizes.
        let pts: Vec<(f64, f64)> = (1..=12).map(|i| {
            let size = f64::from(i * i * i) * 1020.0;
            (size, 30.0 + size / 1_000.0)
        }).collect();
        let fit = SizeFit::of(&pts).unwrap();
        assert!((fit.t0_us - 30.0).abs() < 1e-6, "{fit:?}");
        assert!((fit.bandwidth_mb_s.unwrap() - 1_000.0).abs() < 1e-6, "{fit:?}");
        assert!((fit.at(2_000.0) - 32.0).abs() < 1e-6);
        assert_eq!(fit.knee, None, "one straight line needs no knee: {fit:?}");
        // Flat latency: no per-byte cost to state.
        let flat = SizeFit::of(&[(32.0, 50.0), (1024.0, 50.0), (4096.0, 49.0)]).unwrap();
        assert!(flat.bandwidth_mb_s.is_none(), "{flat:?}");
        assert!(SizeFit::of(&[(32.0, 50.0)]).is_none());
    }

    #[test]
    fn the_size_fit_bends_where_the_per_byte_cost_changes() {
        // 20 µs fixed and 3,000 MB/s up to 127,500 B (within the socket buffers), 1,000 MB/s past
        // it, with ±3 % of deterministic noise: one line would take its slope from the middle.
        let seed = |i: u32| f64::from(i * i * i) * 1020.0;
        let truth = |size: f64| 20.0 + size.min(127_500.0) / 3_000.0 + (size - 127_500.0).max(0.0) / 1_000.0;
        let pts: Vec<(f64, f64)> = (1..=12).map(|i| (seed(i), truth(seed(i)) * (1.0 + 0.03 * if i % 2 == 0 { 1.0 } else { -1.0 }))).collect();
        let fit = SizeFit::of(&pts).unwrap();
        let knee = fit.knee.expect("a knee");
        assert!((knee.size_bytes - 127_500.0).abs() < 1.0, "{fit:?}");
        let bw = fit.bandwidth_mb_s.unwrap();
        assert!((bw / 1_000.0 - 1.0).abs() < 0.1, "{fit:?}");
        assert!((knee.below_mb_s.unwrap() / 3_000.0 - 1.0).abs() < 0.3, "{fit:?}");
        assert!((fit.at(1_762_560.0) / truth(1_762_560.0) - 1.0).abs() < 0.05, "{fit:?}");
        // Flat, then rising: no per-byte cost below the knee.
        let pts: Vec<(f64, f64)> = (1..=8).map(|i| {
            let size = f64::from(i) * 100_000.0;
            (size, if size <= 300_000.0 { 50.0 } else { 50.0 + (size - 300_000.0) / 500.0 })
        }).collect();
        let fit = SizeFit::of(&pts).unwrap();
        assert_eq!(fit.knee.map(|k| k.size_bytes), Some(300_000.0), "{fit:?}");
        assert_eq!(fit.knee.unwrap().below_mb_s, None, "{fit:?}");
        assert!((fit.bandwidth_mb_s.unwrap() - 500.0).abs() < 1.0, "{fit:?}");
    }

    #[test]
    fn bands_take_the_median_and_range_per_index() {
        let b = bands([vec![(0.0, 1.0, 10.0), (1.0, 2.0, 20.0)], vec![(0.0, 1.1, 30.0)], vec![(0.0, 0.9, 20.0), (0.9, 2.0, 40.0)]].into_iter());
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].median, b[0].min, b[0].max), (20.0, 10.0, 30.0));
        assert!((b[0].t_s - 1.0).abs() < 1e-9);
        assert_eq!((b[1].median, b[1].min, b[1].max), (30.0, 20.0, 40.0));
    }
}

/// One configuration's idle warm-up probe (`load.idle`): per idle time, the first message's p50
/// and p99, medians over the usable trials.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleLine {
    pub name: String,
    /// (idle seconds, p50 µs, p99 µs, samples), by idle time.
    pub points: Vec<(f64, f64, f64, u64)>,
}

/// The idle lines of a run, one per configuration that ran the idle probe.
pub fn idle_lines(run: &Run) -> Vec<IdleLine> {
    run.configs
        .iter()
        .filter_map(|c| {
            let summaries: Vec<&LoadgenSummary> = c.trials.iter().filter(|t| stats::usable(t)).filter_map(|t| t.summary.as_ref()).filter(|s| !s.idle.is_empty()).collect();
            let first = summaries.first()?;
            let points = first
                .idle
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    let at = |f: fn(&wsbench_core::result::IdlePoint) -> f64| {
                        let mut v: Vec<f64> = summaries.iter().filter_map(|s| s.idle.get(k)).map(f).collect();
                        v.sort_by(f64::total_cmp);
                        v[v.len() / 2]
                    };
                    let n = summaries.iter().filter_map(|s| s.idle.get(k)).map(|q| q.latency_us.count).sum();
                    (p.idle_s, at(|q| q.latency_us.p50), at(|q| q.latency_us.p99), n)
                })
                .collect();
            Some(IdleLine { name: c.name.clone(), points })
        })
        .collect()
}
