//! The data behind each figure, computed from a loaded run: pure, so it is tested without drawing.
//!
//! Trials of a configuration are combined the lossless way wherever histograms exist: the k-th
//! second of every trial is added into one histogram and percentiles are read from the sum.
//! Counts that are not histograms (throughput, CPU, memory) are shown as the median over trials
//! with the min–max range as a band.

use hdrhistogram::Histogram;
use wsbench_core::hist;

use crate::load::{ConfigRun, Trial};
use crate::merge;
use crate::stats::{self, Spread};

/// Latency percentiles of one second, combined over trials, in µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyPoint {
    /// End of the interval, seconds since the measured window began.
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
    pub t_s: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
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

        let throughput = bands(used.iter().map(|t| t.intervals.iter().map(|r| (r.elapsed_s, r.throughput)).collect()));
        let samples = |f: fn(&wsbench_core::result::ProcessSample) -> f64| {
            bands(used.iter().map(|t| {
                let mut v: Vec<(f64, f64)> = t.server_samples().map(|s| (s.elapsed_s, f(s))).collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v
            }))
        };
        Self {
            name: config.name.clone(),
            latency,
            distribution: distribution(&whole),
            count: whole.len(),
            throughput,
            server_cpu_pct: samples(|s| s.cpu_pct),
            server_rss_mib: samples(|s| s.rss_bytes as f64 / (1024.0 * 1024.0)),
        }
    }
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

/// Pairs (time, value) of several trials, combined by index into median and range.
fn bands(trials: impl Iterator<Item = Vec<(f64, f64)>>) -> Vec<BandPoint> {
    let trials: Vec<Vec<(f64, f64)>> = trials.collect();
    let values: Vec<Vec<f64>> = trials.iter().map(|t| t.iter().map(|p| p.1).collect()).collect();
    let times: Vec<Vec<f64>> = trials.iter().map(|t| t.iter().map(|p| p.0).collect()).collect();
    // Trials sample at the same cadence from the same start, so the k-th samples belong together;
    // their times differ by jitter only.
    stats::spread_by_index(&values)
        .into_iter()
        .zip(stats::spread_by_index(&times))
        .map(|(v, t): (Spread, Spread)| BandPoint { t_s: t.median, median: v.median, min: v.min, max: v.max })
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
    fn bands_take_the_median_and_range_per_index() {
        let b = bands([vec![(1.0, 10.0), (2.0, 20.0)], vec![(1.1, 30.0)], vec![(0.9, 20.0), (2.0, 40.0)]].into_iter());
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].median, b[0].min, b[0].max), (20.0, 10.0, 30.0));
        assert!((b[0].t_s - 1.0).abs() < 1e-9);
        assert_eq!((b[1].median, b[1].min, b[1].max), (30.0, 20.0, 40.0));
    }
}
