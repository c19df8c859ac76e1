//! The result-file readers for `summary.json` and `capacity.json` (the serde types the analysis
//! reads them into): any bytes never panic, and whatever reads in writes out and reads back to
//! the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wsbench_core::result::{CapacityResult, LoadgenSummary};

/// Equal, but floats within a relative 1e-12: serde_json's default float reading may be off by
/// an ulp.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w))),
        _ => a == b,
    }
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8]) {
    if let Ok(first) = serde_json::from_slice::<T>(data) {
        let written = serde_json::to_vec(&first).expect("a value that was read can be written");
        let again: T = serde_json::from_slice(&written).expect("what we write reads back");
        let (a, b) = (serde_json::to_value(&first).unwrap(), serde_json::to_value(&again).unwrap());
        assert!(same(&a, &b), "{a}\n!=\n{b}");
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<LoadgenSummary>(data);
    round_trip::<CapacityResult>(data);
});
