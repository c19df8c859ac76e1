//! The monotonic clock, in nanoseconds.
//!
//! `CLOCK_MONOTONIC` is one clock for every process on a host, so a timestamp taken by the load
//! generator and carried in a message can be compared with the server's clock: that is what makes
//! one-way latency measurable on one host. `std::time::Instant` reads the same clock but hides
//! the value, so we read it through libc (a vDSO call, ~25 ns).

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds on the host's monotonic clock.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always available on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time consumed by the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time consumed by the whole process (all threads), in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: as above; both CPU-time clocks exist on every Linux we support.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock time as RFC 3339 (UTC, seconds), for `started_at` fields.
pub fn wall_clock_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Seconds since the Unix epoch, for file names and run ids.
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Reads an RFC 3339 UTC instant such as `2026-11-29T04:00:00Z` (fractions of a second
/// allowed); the error says what to write instead.
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339(s).map_err(|e| format!("`{s}` is not an RFC 3339 UTC time ({e}); write e.g. 2026-11-29T04:00:00Z"))
}

/// One reading of both clocks, taken as close together as it can (the tightest of a few
/// tries), so that converting between them errs by microseconds even on a busy machine.
pub fn paired_now() -> (u64, SystemTime) {
    let mut best = (u64::MAX, 0, UNIX_EPOCH);
    for _ in 0..5 {
        let before = now_ns();
        let wall = SystemTime::now();
        let after = now_ns();
        if after - before < best.0 {
            best = (after - before, before + (after - before) / 2, wall);
        }
    }
    (best.1, best.2)
}

/// The monotonic timestamp of the wall-clock instant `at`, given one reading of both clocks
/// (`now_mono`, `now_wall`). Instants before the monotonic clock's origin read as 0.
pub fn monotonic_at(at: SystemTime, now_mono: u64, now_wall: SystemTime) -> u64 {
    match at.duration_since(now_wall) {
        Ok(ahead) => now_mono.saturating_add(u64::try_from(ahead.as_nanos()).unwrap_or(u64::MAX)),
        Err(behind) => now_mono.saturating_sub(u64::try_from(behind.duration().as_nanos()).unwrap_or(u64::MAX)),
    }
}

/// The wall-clock instant of the monotonic timestamp `mono`, given one reading of both clocks.
pub fn wall_at(mono: u64, now_mono: u64, now_wall: SystemTime) -> SystemTime {
    if mono >= now_mono {
        now_wall + std::time::Duration::from_nanos(mono - now_mono)
    } else {
        now_wall.checked_sub(std::time::Duration::from_nanos(now_mono - mono)).unwrap_or(UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_and_monotonic_instants_convert_both_ways() {
        let wall = parse_rfc3339("2026-11-29T04:00:00Z").unwrap();
        let later = parse_rfc3339("2026-11-29T04:00:02.5Z").unwrap();
        assert_eq!(monotonic_at(later, 10_000_000_000, wall), 12_500_000_000);
        assert_eq!(monotonic_at(wall, 10_000_000_000, later), 7_500_000_000);
        assert_eq!(monotonic_at(wall, 1, later), 0, "before the origin");
        assert_eq!(wall_at(7_500_000_000, 10_000_000_000, later), wall);
        assert_eq!(wall_at(12_500_000_000, 10_000_000_000, wall), later);
        assert!(parse_rfc3339("tomorrow").unwrap_err().contains("2026-11-29T04:00:00Z"));
    }

    #[test]
    fn monotonic_never_goes_back() {
        let mut last = now_ns();
        for _ in 0..1000 {
            let t = now_ns();
            assert!(t >= last);
            last = t;
        }
    }

    #[test]
    fn monotonic_matches_std_sleep_roughly() {
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = now_ns();
        assert!(b - a >= 5_000_000, "slept 5 ms but the clock moved {} ns", b - a);
    }
}
