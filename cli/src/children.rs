//! Child processes that never outlive `wsbench run`.
//!
//! Every server and load generator starts as the leader of its own process group, with
//! `PR_SET_PDEATHSIG = SIGKILL`: when the orchestrator dies, however it dies, the kernel kills
//! the child. Its own children (an external server's workers, a shell's job) do not inherit
//! that setting, so the whole group is killed on every exit path we run code on (the trial's
//! end, an error, a panic, a second Ctrl-C), and for the one we don't (`kill -9`) a watchdog
//! process, `wsbench` re-executed as `watch-groups`, holds the group ids on a pipe and kills
//! the groups when our end of the pipe closes.
//!
//! PDEATHSIG fires when the *thread* that forked exits, not the process: spawn only from the
//! main thread (or another thread that lives as long as the child), as `wsbench run` does.

use std::io::{self, BufRead, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

/// Hidden subcommand that runs the watchdog.
pub const WATCHDOG_COMMAND: &str = "watch-groups";

/// Live process groups, readable from a signal handler (no lock, no allocation).
static GROUPS: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];

/// Our end of the watchdog's stdin; closing it (at exit or death) makes it kill what is left.
static WATCHDOG: OnceLock<Mutex<ChildStdin>> = OnceLock::new();

/// Starts the watchdog once per process. Without it a `kill -9` would still take the direct
/// children down (PDEATHSIG), but not their own children.
pub fn start_watchdog(exe: &Path) -> io::Result<()> {
    if WATCHDOG.get().is_some() {
        return Ok(());
    }
    // Its own group: the terminal's Ctrl-C must not end it before it has done its job. No
    // PDEATHSIG: it must outlive us, and it exits by itself once the pipe closes.
    let mut child = Command::new(exe)
        .arg(WATCHDOG_COMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()?;
    let stdin = child.stdin.take().expect("stdin was piped");
    // It is never waited for: it outlives us by design and init reaps it.
    drop(child);
    let _ = WATCHDOG.set(Mutex::new(stdin));
    Ok(())
}

fn tell_watchdog(line: &str) {
    if let Some(w) = WATCHDOG.get() {
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = w.write_all(line.as_bytes()).and_then(|_| w.flush()) {
            eprintln!("wsbench run: the child watchdog is gone ({e}); a kill -9 of wsbench could leave processes behind");
        }
    }
}

/// A child process leading its own process group; the whole group is killed when dropped.
#[derive(Debug)]
pub struct GroupChild {
    child: Child,
    pgid: i32,
}

/// Starts `cmd` as a process-group leader that dies with us (see the module docs).
pub fn spawn(cmd: &mut Command) -> io::Result<GroupChild> {
    let parent = std::process::id() as libc::pid_t;
    cmd.process_group(0);
    // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // If we died between fork and prctl, the child was already reparented and no
            // signal will ever come: don't start at all.
            if libc::getppid() != parent {
                return Err(io::Error::other("wsbench exited while this process was starting"));
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let pgid = child.id() as i32;
    if !GROUPS.iter().any(|s| s.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst).is_ok()) {
        eprintln!("wsbench run: more than {} process groups at once; group {pgid} is watched by PDEATHSIG only", GROUPS.len());
    }
    tell_watchdog(&format!("+{pgid}\n"));
    Ok(GroupChild { child, pgid })
}

impl GroupChild {
    /// Sends `sig` to every process of the group.
    pub fn signal_group(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on a group we lead; a group that is gone yields ESRCH, ignored.
        unsafe { libc::kill(-self.pgid, sig) };
    }

    /// SIGKILL to the whole group, then reaps the leader.
    pub fn kill_group(&mut self) {
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Deref for GroupChild {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for GroupChild {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        // The leader may be gone while its children live on: the group goes in any case.
        self.kill_group();
        for slot in &GROUPS {
            let _ = slot.compare_exchange(self.pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
        tell_watchdog(&format!("-{}\n", self.pgid));
    }
}

/// SIGKILL to every live group. Async-signal-safe: for a signal handler that then `_exit`s.
pub fn kill_all_groups() {
    for slot in &GROUPS {
        let g = slot.load(Ordering::SeqCst);
        if g > 0 {
            // SAFETY: kill(2) is async-signal-safe.
            unsafe { libc::kill(-g, libc::SIGKILL) };
        }
    }
}

/// The watchdog: reads `+PGID` and `-PGID` lines on stdin; at end of input (the orchestrator
/// exited or was killed) it kills every group still listed.
pub fn watchdog_main() -> ExitCode {
    // SAFETY: setting signal dispositions to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut groups: Vec<i32> = Vec::new();
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (sign, pgid) = line.split_at(line.len().min(1));
        match (sign, pgid.trim().parse::<i32>()) {
            ("+", Ok(g)) if g > 1 => groups.push(g),
            ("-", Ok(g)) => groups.retain(|&x| x != g),
            _ => eprintln!("wsbench {WATCHDOG_COMMAND}: ignoring `{line}`"),
        }
    }
    for g in groups {
        // SAFETY: kill(2); a group that no longer exists yields ESRCH, ignored.
        unsafe { libc::kill(-g, libc::SIGKILL) };
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Process group and state of `pid` from /proc/<pid>/stat, `None` once it is gone.
    fn pgrp_and_state(pid: i32) -> Option<(i32, char)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
        Some((f.get(2)?.parse().ok()?, f.first()?.chars().next()?))
    }

    fn members(pgid: i32) -> Vec<i32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&p| matches!(pgrp_and_state(p), Some((g, s)) if g == pgid && s != 'Z'))
            .collect()
    }

    #[test]
    fn a_child_leads_its_own_group_and_the_group_goes_when_dropped() {
        let child = spawn(Command::new("sh").args(["-c", "sleep 30 & sleep 30"])).unwrap();
        let pgid = child.id() as i32;
        let end = Instant::now() + Duration::from_secs(5);
        // The shell and its two sleeps, or the shell exec'ing the last one: at least 2.
        while members(pgid).len() < 2 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(members(pgid).len() >= 2, "{:?}", members(pgid));
        assert_ne!(pgid, unsafe { libc::getpgrp() });
        assert!(GROUPS.iter().any(|g| g.load(Ordering::SeqCst) == pgid));
        drop(child);
        while !members(pgid).is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(members(pgid), Vec::<i32>::new());
        assert!(!GROUPS.iter().any(|g| g.load(Ordering::SeqCst) == pgid));
    }
}
