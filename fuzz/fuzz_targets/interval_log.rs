//! The interval-log reader (HdrHistogram log format, base64 + deflate entries): any bytes
//! never panic nor allocate beyond the limit; every histogram read survives encoding and
//! decoding unchanged (plain V2: deflate is zlib's business), and the logs add up.
#![no_main]

use std::path::Path;

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use libfuzzer_sys::fuzz_target;
use wsbench_core::hist;

fuzz_target!(|data: &[u8]| {
    let Ok(intervals) = hist::parse_interval_log(data, Path::new("fuzz.hlog")) else { return };
    let mut buf = Vec::new();
    for iv in &intervals {
        buf.clear();
        V2Serializer::new().serialize(&iv.histogram, &mut buf).expect("a histogram that was read can be written");
        let back: Histogram<u64> = Deserializer::new().deserialize(&mut buf.as_slice()).expect("what we write reads back");
        assert_eq!(back.len(), iv.histogram.len());
        assert_eq!(back.max(), iv.histogram.max());
        assert_eq!(back.min_nz(), iv.histogram.min_nz());
    }
    let total = hist::total(&intervals);
    assert_eq!(total.len(), intervals.iter().map(|iv| iv.histogram.len()).sum::<u64>());
});
