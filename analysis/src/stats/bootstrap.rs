//! Bootstrap confidence interval of the ratio of two medians, each taken over trials.
//!
//! A benchmark comparison has a handful of trials per side (3 to 10), each one number per metric,
//! and nothing says those numbers are normally distributed: a trial that caught a pause sits far
//! from the others. So no t-test; instead, as criterion.rs does, the percentile bootstrap: resample
//! each side's trials with replacement (the two sides independently, since they are independent
//! measurements), take the median of each resample, divide, repeat many times, and read the
//! interval off the quantiles of those ratios. Medians, not means, so one odd trial moves the
//! estimate little.
//!
//! With few trials the resampled medians can only take the observed values, so the interval is
//! coarse (with three trials per side it spans roughly from the smallest candidate over the
//! largest base to the largest candidate over the smallest base): that is the honest width of what
//! three trials can say. With one trial on either side there is nothing to resample and no
//! interval is given.
//!
//! Everything here is pure and deterministic: the generator is seeded, so the same inputs and
//! [`Settings`] give the same interval on every machine.

/// Resamples per interval: enough that the 2.5 % and 97.5 % quantiles move by well under a
/// percent between seeds, and still a few milliseconds of work.
pub const DEFAULT_RESAMPLES: usize = 10_000;
/// Two-sided confidence level of the interval.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;
/// Fixed so that a comparison gives the same interval every time it is run on the same files.
pub const DEFAULT_SEED: u64 = 0x5753_4245_4E43_4821; // "WSBENCH!"

/// How an interval is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub resamples: usize,
    /// Between 0 and 1, e.g. 0.95.
    pub confidence: f64,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { resamples: DEFAULT_RESAMPLES, confidence: DEFAULT_CONFIDENCE, seed: DEFAULT_SEED }
    }
}

/// A closed interval `[low, high]` of ratios. `high` may be `+∞` (a base median of zero).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }

    /// True when the whole interval lies strictly above `x`.
    pub fn above(&self, x: f64) -> bool {
        self.low > x
    }

    /// True when the whole interval lies strictly below `x`.
    pub fn below(&self, x: f64) -> bool {
        self.high < x
    }
}

/// `candidate / base`, with the conventions the comparison needs for counts that are often zero
/// (errors): `0 / 0 = 1` (no change) and `x / 0 = +∞` for `x > 0`.
pub fn ratio(candidate: f64, base: f64) -> f64 {
    if base == 0.0 {
        if candidate == 0.0 {
            1.0
        } else {
            f64::INFINITY * candidate.signum()
        }
    } else {
        candidate / base
    }
}

/// Median of finite values (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(median_of_sorted(&v))
}

/// Median of sorted values: the middle one, or the mean of the middle two.
pub(crate) fn median_of_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The percentile-bootstrap interval of `median(candidate) / median(base)`.
///
/// `None` when either side has fewer than two finite values: one trial has no spread to resample,
/// and an interval made up from it would claim a certainty the data does not have.
pub fn ratio_of_medians(base: &[f64], candidate: &[f64], settings: &Settings) -> Option<Interval> {
    let base: Vec<f64> = base.iter().copied().filter(|x| x.is_finite()).collect();
    let candidate: Vec<f64> = candidate.iter().copied().filter(|x| x.is_finite()).collect();
    if base.len() < 2 || candidate.len() < 2 || settings.resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(settings.seed);
    // One scratch buffer per side, reused by every resample.
    let (mut b, mut c) = (vec![0.0; base.len()], vec![0.0; candidate.len()]);
    let mut ratios: Vec<f64> = (0..settings.resamples)
        .map(|_| {
            let mb = resampled_median(&base, &mut b, &mut rng);
            let mc = resampled_median(&candidate, &mut c, &mut rng);
            ratio(mc, mb)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - settings.confidence.clamp(0.0, 1.0)) / 2.0;
    Some(Interval { low: quantile_of_sorted(&ratios, tail), high: quantile_of_sorted(&ratios, 1.0 - tail) })
}

/// The percentile-bootstrap interval of one side's median, in the values' own unit: what an
/// absolute threshold (`p99 > 5ms`) is held against. `None` with fewer than two finite values.
pub fn median_interval(values: &[f64], settings: &Settings) -> Option<Interval> {
    let values: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if values.len() < 2 || settings.resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(settings.seed);
    let mut scratch = vec![0.0; values.len()];
    let mut medians: Vec<f64> = (0..settings.resamples).map(|_| resampled_median(&values, &mut scratch, &mut rng)).collect();
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - settings.confidence.clamp(0.0, 1.0)) / 2.0;
    Some(Interval { low: quantile_of_sorted(&medians, tail), high: quantile_of_sorted(&medians, 1.0 - tail) })
}

/// Draws `from.len()` values from `from` with replacement into `scratch` and returns their median.
fn resampled_median(from: &[f64], scratch: &mut [f64], rng: &mut SplitMix64) -> f64 {
    for slot in scratch.iter_mut() {
        *slot = from[rng.below(from.len())];
    }
    scratch.sort_unstable_by(f64::total_cmp);
    median_of_sorted(scratch)
}

/// The `q`-quantile of sorted values, interpolating linearly between neighbours (criterion's
/// and numpy's default). Equal neighbours, infinite ones included, give that value exactly.
fn quantile_of_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    let (a, b) = (v[i], v[(i + 1).min(v.len() - 1)]);
    if a == b || frac == 0.0 {
        a
    } else {
        a + (b - a) * frac
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and statistically good enough to pick
/// resample indices; it keeps the crate free of a random-number dependency.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` by multiply-and-shift (Lemire); the bias is below 2^-50 for our `n`.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log-normal samples around `median`, like trial-to-trial variation of a latency.
    fn lognormal(rng: &mut SplitMix64, median: f64, sigma: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let u = ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64).max(1e-12);
                let v = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                median * (sigma * z).exp()
            })
            .collect()
    }

    #[test]
    fn the_interval_covers_the_true_ratio_of_a_known_distribution() {
        let mut rng = SplitMix64::new(7);
        let base = lognormal(&mut rng, 100.0, 0.1, 40);
        let candidate = lognormal(&mut rng, 120.0, 0.1, 40);
        let ci = ratio_of_medians(&base, &candidate, &Settings::default()).unwrap();
        assert!(ci.contains(1.2), "{ci:?}");
        assert!(ci.above(1.0), "a 20 % shift over 40 trials is significant: {ci:?}");
        assert!(ci.high - ci.low < 0.15, "{ci:?}");
    }

    #[test]
    fn coverage_is_close_to_the_confidence_level() {
        // Over many independent data sets the 95 % interval should hold the true ratio about 95 %
        // of the time; the percentile bootstrap of a median runs a little narrow at small n.
        let mut rng = SplitMix64::new(11);
        let settings = Settings { resamples: 2_000, ..Settings::default() };
        let runs = 200;
        let covered = (0..runs)
            .filter(|_| {
                let base = lognormal(&mut rng, 50.0, 0.2, 20);
                let candidate = lognormal(&mut rng, 40.0, 0.2, 20);
                ratio_of_medians(&base, &candidate, &settings).unwrap().contains(0.8)
            })
            .count();
        assert!((170..=200).contains(&covered), "covered {covered} of {runs}");
    }

    #[test]
    fn identical_inputs_give_an_interval_around_one() {
        let values = [101.0, 97.0, 103.0, 99.0, 100.0];
        let ci = ratio_of_medians(&values, &values, &Settings::default()).unwrap();
        assert!(ci.contains(1.0), "{ci:?}");
        assert!(ci.low < 1.0 && ci.high > 1.0, "{ci:?}");
        let flat = ratio_of_medians(&[5.0, 5.0, 5.0], &[5.0, 5.0], &Settings::default()).unwrap();
        assert_eq!(flat, Interval { low: 1.0, high: 1.0 });
    }

    #[test]
    fn the_same_seed_gives_the_same_interval() {
        let base = [10.0, 12.0, 11.0, 15.0];
        let candidate = [13.0, 11.0, 16.0, 14.0];
        let s = Settings::default();
        assert_eq!(ratio_of_medians(&base, &candidate, &s), ratio_of_medians(&base, &candidate, &s));
        let other = Settings { seed: 1, resamples: 200, ..s };
        let a = ratio_of_medians(&base, &candidate, &other).unwrap();
        assert_eq!(Some(a), ratio_of_medians(&base, &candidate, &other));
    }

    #[test]
    fn one_trial_gives_no_interval() {
        let s = Settings::default();
        assert_eq!(ratio_of_medians(&[1.0], &[1.0, 2.0], &s), None);
        assert_eq!(ratio_of_medians(&[1.0, 2.0], &[3.0], &s), None);
        assert_eq!(ratio_of_medians(&[1.0, f64::NAN], &[1.0, 2.0], &s), None, "non-finite values do not count");
    }

    #[test]
    fn a_zero_base_makes_the_interval_unbounded() {
        let s = Settings::default();
        assert_eq!(ratio_of_medians(&[0.0, 0.0, 0.0], &[0.0, 0.0, 0.0], &s), Some(Interval { low: 1.0, high: 1.0 }));
        let ci = ratio_of_medians(&[0.0, 0.0, 0.0], &[4.0, 5.0, 6.0], &s).unwrap();
        assert_eq!(ci, Interval { low: f64::INFINITY, high: f64::INFINITY });
        assert!(ci.above(1.0));
        let ci = ratio_of_medians(&[0.0, 0.0, 0.0], &[0.0, 0.0, 5.0], &s).unwrap();
        assert!(ci.contains(1.0) && ci.high.is_infinite(), "{ci:?}");
    }

    #[test]
    fn the_median_interval_lies_within_the_values() {
        let s = Settings::default();
        let ci = median_interval(&[4.0, 5.0, 6.0, 5.5, 4.5], &s).unwrap();
        assert!(ci.low >= 4.0 && ci.high <= 6.0 && ci.contains(5.0), "{ci:?}");
        assert_eq!(median_interval(&[4.0], &s), None);
        assert_eq!(median_interval(&[3.0, 3.0, 3.0], &s), Some(Interval { low: 3.0, high: 3.0 }));
    }

    #[test]
    fn ratios_and_medians() {
        assert_eq!(ratio(2.0, 4.0), 0.5);
        assert_eq!(ratio(0.0, 0.0), 1.0);
        assert_eq!(ratio(3.0, 0.0), f64::INFINITY);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(quantile_of_sorted(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert_eq!(quantile_of_sorted(&[1.0, 2.0], 0.25), 1.25);
        assert_eq!(quantile_of_sorted(&[1.0, f64::INFINITY, f64::INFINITY], 0.9), f64::INFINITY);
    }

    #[test]
    fn indices_stay_in_range_and_cover_it() {
        let mut rng = SplitMix64::new(3);
        let mut seen = [0usize; 3];
        for _ in 0..3_000 {
            seen[rng.below(3)] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1_200).contains(&n)), "{seen:?}");
    }
}
