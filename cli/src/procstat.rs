//! CPU and memory of running processes, sampled from /proc once per period into `processes.csv`.
//!
//! Sampling from outside keeps the measured processes honest: they do not report on themselves,
//! and an external server is sampled exactly like the built-in one.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wsbench_core::result::ProcessSample;

/// CPU time (user + system) and resident memory of one process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/statm`; `None` once the process is gone.
pub fn read(pid: u32) -> Option<ProcStat> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let statm = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    parse(&stat, &statm)
}

/// Parses the two files. The command name in `stat` may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
pub fn parse(stat: &str, statm: &str) -> Option<ProcStat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of proc(5); utime and stime are fields 14 and 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(ProcStat { cpu_ticks: utime + stime, rss_bytes: resident_pages * page_size() })
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as u64 } else { 4096 }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as f64 } else { 100.0 }
}

/// A background thread writing one `processes.csv` row per process per period.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl Sampler {
    /// Starts sampling `procs` (role, pid) into `path` every `period`.
    pub fn start(path: &Path, procs: Vec<(String, u32)>, period: Duration) -> std::io::Result<Self> {
        let mut out = csv::Writer::from_path(path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new().name("procstat".into()).spawn(move || {
            let ticks = clock_ticks_per_second();
            let start = Instant::now();
            let mut last: Vec<Option<(Instant, ProcStat)>> = procs.iter().map(|(_, pid)| read(*pid).map(|s| (Instant::now(), s))).collect();
            let mut next = start + period;
            while !flag.load(Ordering::Relaxed) {
                // Sleep in short steps so stopping never waits a whole period.
                let now = Instant::now();
                if now < next {
                    std::thread::sleep((next - now).min(Duration::from_millis(50)));
                    continue;
                }
                next += period;
                for ((role, pid), prev) in procs.iter().zip(last.iter_mut()) {
                    let Some(cur) = read(*pid) else { continue };
                    let t = Instant::now();
                    if let Some((t0, s0)) = prev {
                        let wall = t.duration_since(*t0).as_secs_f64();
                        let cpu = cur.cpu_ticks.saturating_sub(s0.cpu_ticks) as f64 / ticks;
                        out.serialize(ProcessSample {
                            elapsed_s: (t.duration_since(start).as_secs_f64() * 1000.0).round() / 1000.0,
                            role: role.clone(),
                            pid: *pid,
                            cpu_pct: if wall > 0.0 { (cpu / wall * 1000.0).round() / 10.0 } else { 0.0 },
                            rss_bytes: cur.rss_bytes,
                        })
                        .map_err(std::io::Error::other)?;
                    }
                    *prev = Some((t, cur));
                }
                out.flush()?;
            }
            out.flush()
        })?;
        Ok(Self { stop, handle: Some(handle) })
    }

    /// Stops the thread and reports a write failure, if any.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the sampling thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 1000000 500 18446744073709551615";
        let s = parse(stat, "2000 500 100 1 0 300 0").unwrap();
        assert_eq!(s.cpu_ticks, 300);
        assert_eq!(s.rss_bytes, 500 * page_size());
    }

    #[test]
    fn reads_this_process() {
        let s = read(std::process::id()).expect("our own /proc entry");
        assert!(s.rss_bytes > 0);
    }

    #[test]
    fn writes_rows_for_a_live_process() {
        let dir = std::env::temp_dir().join(format!("wsbench-procstat-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.csv");
        let s = Sampler::start(&path, vec![("self".into(), std::process::id())], Duration::from_millis(100)).unwrap();
        std::thread::sleep(Duration::from_millis(450));
        s.finish().unwrap();
        let rows: Vec<ProcessSample> = csv::Reader::from_path(&path).unwrap().deserialize().collect::<Result<_, _>>().unwrap();
        assert!(rows.len() >= 2, "{rows:?}");
        assert!(rows.iter().all(|r| r.role == "self" && r.rss_bytes > 0));
        fs::remove_dir_all(&dir).ok();
    }
}
