//! Histogram settings, summaries and interval logs, shared by every process that records latency.
//!
//! Every latency is recorded in nanoseconds into a histogram from 1 ns to 60 s at three
//! significant digits. Histograms travel between processes as HdrHistogram interval logs
//! (V2 compressed entries, one per second), the format HdrHistogram's own Java and Python log
//! readers understand; merging is `Histogram::add`, never an average of percentiles.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag};
use flate2::{Compress, Compression, FlushCompress, Status};
use hdrhistogram::serialization::{Deserializer, Serializer, V2SerializeError, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Lowest value tracked: 1 ns.
pub const LOWEST_NS: u64 = 1;
/// Highest value tracked: 60 s. Larger values are clamped to it (and still counted).
pub const HIGHEST_NS: u64 = 60_000_000_000;
/// Significant decimal digits kept for every value.
pub const SIGFIG: u8 = 3;
/// Interval logs record nanoseconds; HdrHistogram tools print `Interval_Max` in milliseconds.
pub const LOG_MAX_VALUE_DIVISOR: f64 = 1_000_000.0;

/// A fresh histogram with wsbench's settings; allocate once and reuse (`reset`), never per message.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGFIG).expect("constant bounds are valid")
}

/// Records one value in nanoseconds, clamping beyond [`HIGHEST_NS`]; never allocates.
#[inline]
pub fn record_ns(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns);
}

/// Percentiles of one histogram in microseconds: the shape of every latency block in result files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    /// Absent from results written before p95 was recorded; read it from the interval log then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

impl LatencySummary {
    /// Summarises a histogram recorded in nanoseconds. An empty histogram gives all zeros.
    pub fn from_histogram_ns(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Self {
            count: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1_000.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p95: Some(us(h.value_at_quantile(0.95))),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            p99_99: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
        }
    }
}

/// One entry of an interval log.
#[derive(Debug, Clone)]
pub struct LogInterval {
    /// Start of the interval, relative to the log's base time.
    pub start: Duration,
    pub duration: Duration,
    pub tag: Option<String>,
    pub histogram: Histogram<u64>,
}

/// Errors reading or writing interval logs.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: entry {entry}: {what}")]
    Corrupt { path: String, entry: usize, what: String },
}

/// The builder every wsbench interval log is started with: start and base time set to `start`
/// (so entry timestamps are seconds since the log began) and `Interval_Max` in milliseconds.
pub fn interval_log_builder(start: SystemTime, comment: &str) -> IntervalLogWriterBuilder {
    let mut b = IntervalLogWriterBuilder::new();
    b.add_comment(comment)
        .add_comment("values in nanoseconds; Interval_Max in milliseconds")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(LOG_MAX_VALUE_DIVISOR);
    b
}

/// The serializer for interval log entries (compressed, as Java's log reader expects).
pub fn log_serializer() -> LogSerializer {
    LogSerializer::new()
}

/// HdrHistogram's V2 compressed encoding, byte for byte what the crate's `V2DeflateSerializer`
/// writes, but with its zlib state and buffers kept from one entry to the next. The crate's
/// serializer builds a new compressor per histogram (about a dozen allocations, its own TODO
/// says so); a process writing three logs every second would allocate for that alone, so its
/// steady state would not be allocation-free. This one allocates only while its buffers grow.
pub struct LogSerializer {
    v2: V2Serializer,
    plain: Vec<u8>,
    compressed: Vec<u8>,
    zlib: Compress,
}

/// The cookie of a V2 compressed histogram (`V2_COMPRESSED_COOKIE` in every HdrHistogram).
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;

impl LogSerializer {
    pub fn new() -> Self {
        Self { v2: V2Serializer::new(), plain: Vec::new(), compressed: Vec::new(), zlib: Compress::new(Compression::default(), true) }
    }
}

impl Default for LogSerializer {
    fn default() -> Self {
        Self::new()
    }
}

impl Serializer for LogSerializer {
    type SerializeError = V2SerializeError;

    fn serialize<T: hdrhistogram::Counter, W: io::Write>(&mut self, h: &Histogram<T>, writer: &mut W) -> Result<usize, V2SerializeError> {
        self.plain.clear();
        self.v2.serialize(h, &mut self.plain)?;
        self.zlib.reset();
        self.compressed.clear();
        self.compressed.extend_from_slice(&V2_COMPRESSED_COOKIE.to_be_bytes());
        self.compressed.extend_from_slice(&[0; 4]); // the length, filled in below
        loop {
            // `compress_vec` writes into spare capacity only; give it room and go on until done.
            if self.compressed.capacity() - self.compressed.len() < 64 {
                self.compressed.reserve(self.plain.len() / 2 + 64);
            }
            let consumed = self.zlib.total_in() as usize;
            let status = self.zlib.compress_vec(&self.plain[consumed..], &mut self.compressed, FlushCompress::Finish).map_err(|e| V2SerializeError::IoError(io::Error::other(e)))?;
            if status == Status::StreamEnd {
                break;
            }
        }
        let length = (self.compressed.len() - 8) as u32;
        self.compressed[4..8].copy_from_slice(&length.to_be_bytes());
        writer.write_all(&self.compressed)?;
        Ok(self.compressed.len())
    }
}

/// Writes a whole interval log at once (used when merging shards or trials).
pub fn write_interval_log(path: &Path, start: SystemTime, comment: &str, intervals: &[LogInterval]) -> Result<(), LogError> {
    let io_err = |source| LogError::Io { path: path.display().to_string(), source };
    let mut file = io::BufWriter::new(fs::File::create(path).map_err(io_err)?);
    let mut ser = log_serializer();
    {
        let mut w = interval_log_builder(start, comment).begin_log_with(&mut file, &mut ser).map_err(io_err)?;
        for (i, iv) in intervals.iter().enumerate() {
            let tag = iv.tag.as_deref().and_then(Tag::new);
            w.write_histogram(&iv.histogram, iv.start, iv.duration, tag).map_err(|e| LogError::Corrupt {
                path: path.display().to_string(),
                entry: i,
                what: e.to_string(),
            })?;
        }
    }
    io::Write::flush(&mut file).map_err(io_err)
}

/// Reads every histogram of an interval log written by wsbench or any HdrHistogram tool.
/// Histograms are widened to wsbench's bounds so they can be added to each other.
pub fn read_interval_log(path: &Path) -> Result<Vec<LogInterval>, LogError> {
    let bytes = fs::read(path).map_err(|source| LogError::Io { path: path.display().to_string(), source })?;
    parse_interval_log(&bytes, path)
}

/// [`read_interval_log`] on bytes already read; `path` names the file in errors.
pub fn parse_interval_log(bytes: &[u8], path: &Path) -> Result<Vec<LogInterval>, LogError> {
    let p = || path.display().to_string();
    let mut out = Vec::new();
    let mut decoder = Deserializer::new();
    for (entry, item) in IntervalLogIterator::new(bytes).enumerate() {
        let corrupt = |what: String| LogError::Corrupt { path: p(), entry, what };
        let item = item.map_err(|e| corrupt(format!("{e:?}")))?;
        let LogEntry::Interval(iv) = item else { continue };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(iv.encoded_histogram())
            .map_err(|e| corrupt(e.to_string()))?;
        let plain = checked_v2(&raw).map_err(corrupt)?;
        let decoded: Histogram<u64> = decoder.deserialize(&mut io::Cursor::new(&plain[..])).map_err(|e| corrupt(format!("{e:?}")))?;
        let mut histogram = new_histogram();
        histogram.add(&decoded).map_err(|e| corrupt(format!("{e:?}")))?;
        out.push(LogInterval { start: iv.start_timestamp(), duration: iv.duration(), tag: iv.tag().map(|t| t.as_str().to_owned()), histogram });
    }
    Ok(out)
}

/// Counters one decoded histogram may ask for (8 MB): 4 significant digits over the whole u64
/// range fit; a log entry asking for more is refused, not believed.
const MAX_DECODED_COUNTS: u64 = 1 << 20;
/// Cookie of HdrHistogram's plain V2 encoding (8-byte words).
const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
/// Cookie, payload length, normalizing offset, digits, lowest, highest, integer-to-double ratio.
const V2_HEADER_LEN: usize = 40;

/// One entry's histogram as plain (inflated) V2 bytes, checked before hdrhistogram's decoder
/// sees it: that decoder sizes its buffers by the lengths and bounds an entry claims, so a
/// corrupt 1 KB log could make it allocate gigabytes.
fn checked_v2(raw: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    use std::io::Read as _;
    let u32_at = |b: &[u8], at: usize| b.get(at..at + 4).map(|w| u32::from_be_bytes(w.try_into().expect("4 bytes")));
    let u64_at = |b: &[u8], at: usize| b.get(at..at + 8).map(|w| u64::from_be_bytes(w.try_into().expect("8 bytes")));
    let plain = match u32_at(raw, 0) {
        Some(V2_COOKIE) => std::borrow::Cow::Borrowed(raw),
        Some(V2_COMPRESSED_COOKIE) => {
            let len = u32_at(raw, 4).ok_or("compressed histogram cut short")? as usize;
            let body = raw.get(8..).unwrap_or_default();
            let body = body.get(..len).ok_or_else(|| format!("compressed histogram claims {len} bytes but holds {}", body.len()))?;
            // Varints take at most 9 bytes per counter.
            let limit = V2_HEADER_LEN as u64 + 9 * MAX_DECODED_COUNTS;
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(body).take(limit + 1).read_to_end(&mut out).map_err(|e| format!("cannot inflate the histogram: {e}"))?;
            if out.len() as u64 > limit {
                return Err(format!("histogram inflates past {limit} bytes"));
            }
            std::borrow::Cow::Owned(out)
        }
        _ => return Err("not an HdrHistogram V2 encoding".into()),
    };
    if u32_at(&plain, 0) != Some(V2_COOKIE) || plain.len() < V2_HEADER_LEN {
        return Err("histogram header missing or cut short".into());
    }
    let payload = u32_at(&plain, 4).unwrap_or(0) as usize;
    if payload > plain.len() - V2_HEADER_LEN {
        return Err(format!("histogram claims {payload} payload bytes but holds {}", plain.len() - V2_HEADER_LEN));
    }
    let digits = u32_at(&plain, 12).unwrap_or(0);
    let (low, high) = (u64_at(&plain, 16).unwrap_or(0), u64_at(&plain, 24).unwrap_or(0));
    // Bounds the decoder refuses anyway (before allocating) are left to it.
    if let Some(counts) = counts_needed(low, high, digits).filter(|&c| c > MAX_DECODED_COUNTS) {
        return Err(format!("histogram of {digits} digits over {low}..{high} needs {counts} counters; at most {MAX_DECODED_COUNTS} are read"));
    }
    Ok(plain)
}

/// Length of the counts array `Histogram::new_with_bounds(low, high, digits)` allocates, as
/// hdrhistogram computes it; `None` for bounds it refuses.
fn counts_needed(low: u64, high: u64, digits: u32) -> Option<u64> {
    if digits > 5 || low == 0 || high < low.checked_mul(2)? {
        return None;
    }
    let unit_magnitude = 63 - low.leading_zeros();
    let largest_single_unit = 2 * 10u64.pow(digits);
    let sub_bucket_magnitude = 64 - (largest_single_unit - 1).leading_zeros();
    if unit_magnitude + sub_bucket_magnitude > 63 {
        return None;
    }
    let sub_buckets = 1u64 << sub_bucket_magnitude;
    let mut smallest_untrackable = sub_buckets << unit_magnitude;
    let mut buckets = 1u64;
    while smallest_untrackable <= high {
        if smallest_untrackable > u64::MAX / 2 {
            buckets += 1;
            break;
        }
        smallest_untrackable <<= 1;
        buckets += 1;
    }
    Some((buckets + 1) * (sub_buckets / 2))
}

/// Adds every interval of a log into one histogram: the whole run's distribution.
pub fn total(intervals: &[LogInterval]) -> Histogram<u64> {
    let mut h = new_histogram();
    for iv in intervals {
        h.add(&iv.histogram).expect("all wsbench histograms share bounds");
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A histogram with a spread of values, different for each `seed`.
    fn spread(seed: u64) -> Histogram<u64> {
        let mut h = new_histogram();
        for i in 1..=20_000u64 {
            record_ns(&mut h, (i * 7_919 + seed * 104_729) % 50_000_000 + 1_000);
        }
        h
    }

    #[test]
    fn counts_needed_is_what_hdrhistogram_allocates() {
        for (low, high, digits) in [(1, 60_000_000_000, 3), (1, 2, 0), (1000, u64::MAX, 2), (7, 1 << 40, 4), (1, u64::MAX, 5), (1 << 20, 1 << 50, 1)] {
            let h = Histogram::<u64>::new_with_bounds(low, high, digits as u8).unwrap();
            assert_eq!(counts_needed(low, high, digits), Some(h.distinct_values() as u64), "{low} {high} {digits}");
        }
        assert_eq!(counts_needed(0, 10, 3), None);
        assert_eq!(counts_needed(1, 10, 6), None);
    }

    /// A one-entry log whose histogram is `raw`, base64-encoded.
    fn log_with(raw: &[u8]) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        format!("#[StartTime: 0.000 (seconds since epoch)]\n0.000,1.000,1.0,{b64}\n").into_bytes()
    }

    #[test]
    fn entries_that_claim_more_than_they_hold_are_refused_before_allocating() {
        let mut good = Vec::new();
        V2Serializer::new().serialize(&spread(1), &mut good).unwrap();
        assert_eq!(parse_interval_log(&log_with(&good), Path::new("x")).unwrap().len(), 1);
        // A payload length of 2 GB in a 100-byte entry.
        let mut lying = good.clone();
        lying[4..8].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        let e = parse_interval_log(&log_with(&lying), Path::new("x")).unwrap_err().to_string();
        assert!(e.contains("claims 2147483647 payload bytes"), "{e}");
        // Five digits over the whole u64 range: 6 M counters.
        let mut wide = good.clone();
        wide[12..16].copy_from_slice(&5u32.to_be_bytes());
        wide[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        let e = parse_interval_log(&log_with(&wide), Path::new("x")).unwrap_err().to_string();
        assert!(e.contains("counters"), "{e}");
        // A compressed entry claiming more bytes than it has.
        let mut packed = Vec::new();
        log_serializer().serialize(&spread(2), &mut packed).unwrap();
        assert_eq!(parse_interval_log(&log_with(&packed), Path::new("x")).unwrap().len(), 1);
        packed[4..8].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        let e = parse_interval_log(&log_with(&packed), Path::new("x")).unwrap_err().to_string();
        assert!(e.contains("compressed histogram claims"), "{e}");
    }

    #[test]
    fn log_serializer_writes_what_the_crates_deflate_serializer_writes() {
        let mut ours = log_serializer();
        let mut theirs = hdrhistogram::serialization::V2DeflateSerializer::new();
        // Several in a row: the reused zlib state must start afresh each time.
        for h in [spread(1), new_histogram(), spread(2), spread(3)] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let n = ours.serialize(&h, &mut a).unwrap();
            theirs.serialize(&h, &mut b).unwrap();
            assert_eq!(n, a.len());
            assert_eq!(a, b, "same bytes as hdrhistogram's V2DeflateSerializer");
            let back: Histogram<u64> = Deserializer::new().deserialize(&mut a.as_slice()).unwrap();
            assert_eq!(back, h);
        }
    }

    #[test]
    fn summary_is_in_microseconds() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            record_ns(&mut h, v * 1_000);
        }
        let s = LatencySummary::from_histogram_ns(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99 - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.max - 1000.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn values_beyond_the_range_are_clamped_not_lost() {
        let mut h = new_histogram();
        record_ns(&mut h, HIGHEST_NS * 10);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn interval_log_round_trips_count_for_count() {
        let dir = std::env::temp_dir().join(format!("wsbench-hist-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.hlog");
        let mut ivs = Vec::new();
        for i in 0..3u64 {
            let mut h = new_histogram();
            for v in 0..100u64 {
                record_ns(&mut h, 1_000 + v * 997 * (i + 1));
            }
            ivs.push(LogInterval { start: Duration::from_secs(i), duration: Duration::from_secs(1), tag: None, histogram: h });
        }
        write_interval_log(&path, SystemTime::now(), "test", &ivs).unwrap();
        let back = read_interval_log(&path).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in ivs.iter().zip(&back) {
            assert_eq!(a.start, b.start);
            assert_eq!(a.histogram, b.histogram);
        }
        assert_eq!(total(&back).len(), 300);
        fs::remove_dir_all(&dir).ok();
    }
}
