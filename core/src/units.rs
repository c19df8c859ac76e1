//! Parsing and printing of the units users type: durations (`10s`, `50ms`) and sizes (`32`, `1KiB`),
//! and latencies printed for people (`48.2 µs`, `1.23 ms`).
//!
//! One implementation for the command line, scenario files and result files, so `64KiB` means the
//! same everywhere and a result file can be pasted back into a scenario.

use std::time::Duration;

/// Parses a human duration: `10s`, `500ms`, `1m 30s`, `2min`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    use humantime::DurationError as E;
    humantime::parse_duration(s.trim()).map_err(|e| {
        // humantime's positions ("expected number at 0") mean nothing to a reader; its unit and
        // overflow findings do.
        let why = match e {
            E::UnknownUnit { unit, .. } => format!(": unknown unit `{unit}`"),
            E::NumberOverflow => ": too large".into(),
            _ => String::new(),
        };
        format!("`{s}` is not a duration{why}; write e.g. 10s, 500ms, 1m")
    })
}

/// A count or rate for people, with thousands separators: `980`, `4,000`, `1,523,450`; below
/// 10, one decimal when it has one (`0.5`).
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() < 10.0 && v.fract().abs() >= 0.05 {
        return format!("{v:.1}");
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if v < 0.0 && digits != "0" {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Prints a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Parses a size in bytes: `32`, `1KiB`, `64 KiB`, `16MiB`, `1kb`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    t.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("`{s}` is not a size ({e}); write e.g. 32, 1KiB, 64KiB, 16MiB"))
}

/// Parses a share of a whole: `0.1%` (a percentage) or `0.001` (a fraction), between 0 and 1.
pub fn parse_share(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let value = match t.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    };
    match value {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a share between 0 and 100 %; write e.g. 0.1% or 0.001")),
    }
}

/// Parses a rate of events: `100/s`, `6000/min` (or `/m`), or a bare number per second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let (n, per) = match s.split_once('/') {
        Some((n, "s")) => (n, 1.0),
        Some((n, "min" | "m")) => (n, 60.0),
        Some(_) => return Err(format!("{s:?}: give a rate per second or per minute, e.g. 100/s or 6000/min")),
        None => (s, 1.0),
    };
    let n: f64 = n.trim().parse().map_err(|_| format!("{s:?}: give a number per second, e.g. 100/s"))?;
    let rate = n / per;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("{s:?}: the rate must be above 0, e.g. 100/s"));
    }
    Ok(rate)
}

/// A number or a string, either read by `parse`: the one shape of the serde helpers below.
fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D, parse: fn(&str) -> Result<f64, String>) -> Result<Option<f64>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    let v = match <Raw as serde::Deserialize>::deserialize(d)? {
        Raw::Number(n) => parse(&n.to_string()),
        Raw::Text(s) => parse(&s),
    };
    v.map(Some).map_err(serde::de::Error::custom)
}

/// Serde helper for rates written as a number per second (`100`) or a string (`"100/s"`,
/// `"6000/min"`).
pub mod serde_rate {
    /// For `Option<f64>` fields.
    pub fn deserialize_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        super::number_or_text(d, super::parse_rate)
    }
}

/// Serde helper for shares written as a fraction (`0.001`) or a percentage string (`"0.1%"`).
pub mod serde_share {
    /// For `Option<f64>` fields.
    pub fn deserialize_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        super::number_or_text(d, super::parse_share)
    }
}

// ---------------------------------------------------------------- latencies for people

/// A time unit to print latencies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Ns,
    Us,
    Ms,
    S,
}

impl TimeUnit {
    /// The unit a value in microseconds reads best in: the largest that keeps it at or above 1.
    pub fn for_us(us: f64) -> Self {
        let a = us.abs();
        if a >= 1e6 {
            Self::S
        } else if a >= 1e3 {
            Self::Ms
        } else if a >= 1.0 || a == 0.0 {
            Self::Us
        } else {
            Self::Ns
        }
    }

    /// How many microseconds make one of this unit.
    pub fn us_per_unit(self) -> f64 {
        match self {
            Self::Ns => 1e-3,
            Self::Us => 1.0,
            Self::Ms => 1e3,
            Self::S => 1e6,
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            Self::Ns => "ns",
            Self::Us => "µs",
            Self::Ms => "ms",
            Self::S => "s",
        }
    }
}

/// Three significant digits, without a trailing `.0` on round values: `48.2`, `480`, `4.82`, `1`.
pub fn sig3(v: f64) -> String {
    trim_zeros(format!("{v:.d$}", d = decimals_for(v)))
}

/// Drops trailing zeros after a decimal point: `1.50` -> `1.5`, `2.00` -> `2`.
pub fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A latency given in µs, in its best unit and without trailing zeros (axis ticks, prose):
/// `850 ns`, `48.2 µs`, `1 ms`, `2.5 s`.
pub fn latency_us(us: f64) -> String {
    let unit = TimeUnit::for_us(us);
    format!("{} {}", sig3(us / unit.us_per_unit()), unit.suffix())
}

/// Decimals that give three significant digits at the magnitude of `v`: `48.2`, `480`, `4.82`.
pub fn decimals_for(v: f64) -> usize {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        0
    } else if a >= 10.0 {
        1
    } else {
        2
    }
}

/// A latency given in µs for a table: best unit, fixed decimals (`1.00 ms`, `48.2 µs`), so the
/// cells of a column line up and a range can reuse the same unit and decimals.
pub fn latency_fixed(us: f64) -> String {
    let unit = TimeUnit::for_us(us);
    let v = us / unit.us_per_unit();
    format!("{v:.d$} {}", unit.suffix(), d = decimals_for(v))
}

/// Serde helpers for durations written as human strings.
pub mod serde_duration {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Duration>`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_str(&format_duration(*d)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            let s = Option::<String>::deserialize(d)?;
            s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
        }
    }
}

/// Serde helper for sizes written as a number of bytes or a string with a unit.
pub mod serde_size {
    use super::*;
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(n),
            Raw::Text(s) => parse_size(&s).map_err(serde::de::Error::custom),
        }
    }

    /// The same for `Option<u64>`.
    pub mod option {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_the_issue_names() {
        assert_eq!(parse_share("0.1%").unwrap(), 0.001);
        assert_eq!(parse_share("0.25").unwrap(), 0.25);
        assert_eq!(parse_share("100 %").unwrap(), 1.0);
        assert!(parse_share("150%").unwrap_err().contains("150%"));
        assert!(parse_share("lots").is_err());
        assert_eq!(parse_size("32").unwrap(), 32);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert!(parse_size("lots").unwrap_err().contains("lots"));
    }

    #[test]
    fn latencies_pick_a_readable_unit() {
        assert_eq!(latency_us(0.85), "850 ns");
        assert_eq!(latency_us(48.234), "48.2 µs");
        assert_eq!(latency_us(1_234.0), "1.23 ms");
        assert_eq!(latency_fixed(1_000.0), "1.00 ms");
    }

    #[test]
    fn durations_round_trip() {
        for s in ["10s", "500ms", "1m", "2s 500ms"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert!(parse_duration("soon").is_err());
    }
}
