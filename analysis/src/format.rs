//! Human units for report cells and axis ticks: latencies, rates, bytes, percentiles.
//!
//! Latencies arrive in microseconds (the unit of every summary file) and leave in whichever of
//! ns, µs, ms or s reads best, with three significant digits. Bytes go through `bytesize`.
//! Everything here is pure.

pub use wsbench_core::units::{decimals_for, thousands, latency_fixed, latency_us, sig3, trim_zeros, TimeUnit};

/// A rate in messages per second, the way every table and sentence of wsbench prints it:
/// `980`, `3,998`, `15,234`, `1,523,450` (axis ticks use [`rate_tick`]).
pub fn rate(v: f64) -> String {
    thousands(v)
}

/// A count to three significant digits, for prose and legends: `980`, `24k`, `481k`, `1.23M`.
pub fn count(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", sig3(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", sig3(v / 1e3))
    } else {
        format!("{v:.0}")
    }
}

/// An axis tick for a rate: like [`rate`] but without trailing zeros (`150k`, not `150.0k`).
pub fn rate_tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim_zeros(format!("{:.2}", v / 1e6)))
    } else if a >= 1e3 {
        format!("{}k", trim_zeros(format!("{:.1}", v / 1e3)))
    } else {
        trim_zeros(format!("{v:.1}"))
    }
}

/// Bytes in binary units: `12.3 MiB`.
pub fn bytes(b: f64) -> String {
    bytesize::ByteSize::b(b.max(0.0).round() as u64).to_string_as(true)
}

/// A percentage of one core: `98.5 %`.
pub fn percent(v: f64) -> String {
    format!("{v:.1} %")
}

/// The percentile that sits at `x = 1/(1-p)` on a percentile-distribution axis: `99.9%`.
pub fn percentile_at(x: f64) -> String {
    if x <= 1.0 {
        return "0%".into();
    }
    let p = 100.0 * (1.0 - 1.0 / x);
    // Enough decimals to tell 99.99 from 99.999, and no more.
    let decimals = (x.log10().round() as i32 - 2).clamp(0, 6) as usize;
    format!("{}%", trim_zeros(format!("{p:.decimals$}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_pick_a_readable_unit() {
        assert_eq!(latency_us(0.85), "850 ns");
        assert_eq!(latency_us(48.234), "48.2 µs");
        assert_eq!(latency_us(480.0), "480 µs");
        assert_eq!(latency_us(1_234.0), "1.23 ms");
        assert_eq!(latency_us(1_000.0), "1 ms");
        assert_eq!(latency_us(2_500_000.0), "2.5 s");
        assert_eq!(latency_us(0.0), "0 µs");
        assert_eq!(latency_fixed(1_000.0), "1.00 ms");
        assert_eq!(latency_fixed(58.0), "58.0 µs");
    }

    #[test]
    fn rates_and_bytes() {
        assert_eq!(rate(152_345.0), "152,345");
        assert_eq!(rate(15_234.0), "15,234");
        assert_eq!(rate(3_998.4), "3,998");
        assert_eq!(rate(1_523_450.0), "1,523,450");
        assert_eq!(rate(980.4), "980");
        assert_eq!(rate(0.5), "0.5");
        assert_eq!(rate(-1_000.0), "-1,000");
        assert_eq!(count(24_000.0), "24k");
        assert_eq!(count(481_234.0), "481k");
        assert_eq!(count(1_234_567.0), "1.23M");
        assert_eq!(rate_tick(150_000.0), "150k");
        assert_eq!(rate_tick(2_500_000.0), "2.5M");
        assert_eq!(rate_tick(0.0), "0");
        assert_eq!(bytes(12.5 * 1024.0 * 1024.0), "12.5 MiB");
    }

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_at(2.0), "50%");
        assert_eq!(percentile_at(10.0), "90%");
        assert_eq!(percentile_at(100.0), "99%");
        assert_eq!(percentile_at(1_000.0), "99.9%");
        assert_eq!(percentile_at(10_000.0), "99.99%");
        assert_eq!(percentile_at(100_000.0), "99.999%");
        assert_eq!(percentile_at(1.0), "0%");
    }
}
