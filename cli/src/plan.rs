//! `wsbench run --dry-run`: what a scenario would run, in what order and for about how long.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use wsbench_core::result::SearchOver;
use wsbench_core::scenario::{CapacitySearch, ConfigSpec, LoadSpec, Scenario, ServerSpec};
use wsbench_core::units::{format_duration, thousands};

/// Starting and stopping a server around a trial, roughly.
const SERVER_OVERHEAD: Duration = Duration::from_millis(500);

/// The longest one load generator of `load` can take: connecting, warm-up, the measured window
/// and the whole drain timeout.
pub fn trial_time(load: &LoadSpec) -> Duration {
    if !load.idle.is_empty() {
        // The idle probe: every idle time in turn, each echo bounded by 5 s, and the connect.
        let idle: Duration = load.idle.iter().sum();
        return idle + Duration::from_secs(5) * (load.idle.len() as u32 + 1) + Duration::from_secs_f64(f64::from(load.connections) / load.connect_rate);
    }
    // A connection ramp's processes wait for a shared start.
    let shared_start = if load.processes > 1 && ramps_connections(load) { crate::run::SHARD_START_MARGIN } else { Duration::ZERO };
    load.warmup + load.duration + load.drain_timeout + Duration::from_secs_f64(f64::from(load.connections) / load.connect_rate) + shared_start
}

/// True when the load's stages move its open connections.
fn ramps_connections(l: &LoadSpec) -> bool {
    l.stages.iter().any(|s| s.connections.is_some_and(|c| c != l.connections))
}

/// The longest one trial of `config` can take, with a search's every probe.
pub fn config_time(config: &ConfigSpec, search: Option<&CapacitySearch>) -> Duration {
    let one = trial_time(&config.load) + SERVER_OVERHEAD;
    match search {
        // Connecting takes longest at the most connections a search may probe.
        Some(s) if s.over == SearchOver::Connections => {
            let most = LoadSpec { connections: s.max_connections, ..config.load.clone() };
            (trial_time(&most) + SERVER_OVERHEAD) * s.max_probes
        }
        Some(s) => one * s.max_probes,
        None => one,
    }
}

/// The plan of a run as text: each configuration, the trials, the order and the time it takes
/// at most (every drain timeout spent, every capacity probe used).
pub fn describe(scenario: &Scenario, results: &Path) -> String {
    let mut out = String::new();
    let configs = scenario.configs.len();
    let _ = writeln!(
        out,
        "scenario `{}` ({}): {} × {}, interleaved",
        scenario.name,
        scenario.path.display(),
        plural(configs, "configuration"),
        plural(scenario.trials as usize, "trial")
    );
    if !scenario.description.is_empty() {
        let _ = writeln!(out, "  {}", scenario.description);
    }
    let width = scenario.configs.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
    let mut total = Duration::ZERO;
    out.push('\n');
    for c in &scenario.configs {
        total += config_time(c, scenario.search.as_ref()) * scenario.trials;
        let _ = writeln!(out, "  {:width$}  server: {}", c.name, server(c));
        let _ = writeln!(out, "  {:width$}  load:   {}", "", load(&c.load));
    }
    out.push('\n');
    if let Some(s) = &scenario.search {
        let _ = match s.over {
            SearchOver::Rate => writeln!(
                out,
                "capacity search: the highest rate meeting `{}`, from {} msgs/s up to {} msgs/s, at most {} probes per trial",
                s.objective(),
                thousands(s.start_rate),
                thousands(s.max_rate),
                s.max_probes
            ),
            SearchOver::Connections => writeln!(
                out,
                "capacity search: the most connections meeting `{}`, from {} up to {}{}, at most {} probes per trial",
                s.objective(),
                thousands(f64::from(s.start_connections)),
                thousands(f64::from(s.max_connections)),
                s.rate_per_connection.map(|r| format!(" at {} msgs/s each", thousands(r))).unwrap_or_default(),
                s.max_probes
            ),
        };
    }
    let order: Vec<String> = (1..=scenario.trials).flat_map(|t| scenario.configs.iter().map(move |c| format!("{} #{t}", c.name))).collect();
    let shown = order.len().min(8);
    let more = if order.len() > shown { format!(", … ({} in all)", order.len()) } else { String::new() };
    let _ = writeln!(out, "order: {}{more}", order[..shown].join(", "));
    let _ = writeln!(
        out,
        "time: at most {}{} (warm-up, window, drain timeout and connecting of every trial; the report adds a few seconds)",
        format_duration(Duration::from_secs(total.as_secs())),
        if scenario.search.is_some() { ", if every search uses all its probes" } else { "" }
    );
    let _ = writeln!(out, "results: {}/{}/<run-id>/ (nothing was run: --dry-run)", results.display(), scenario.name);
    out
}

fn server(c: &ConfigSpec) -> String {
    match &c.server {
        ServerSpec::Builtin(b) => {
            let mut s = format!("built-in, {} engine, {} workload, {} runtime, {} workers", b.engine.name(), b.workload.name(), b.runtime.name(), b.workers);
            if let Some(p) = &b.pause {
                let _ = write!(s, ", pauses {} every {}", format_duration(p.pause_for), format_duration(p.every));
            }
            if let Some(d) = &b.deflate {
                let params = d.to_args()[1..].join(" ");
                let _ = write!(s, ", permessage-deflate ({})", if params.is_empty() { "default parameters" } else { &params });
            }
            if !b.allow_origins.is_empty() {
                let _ = write!(s, ", origins {}", b.allow_origins.join(" "));
            }
            if let Some(r) = b.conn_rate {
                let _ = write!(s, ", {} upgrades/s per peer (burst {})", thousands(r), b.conn_burst.map_or("1 s of it".into(), |n| n.to_string()));
            }
            s
        }
        ServerSpec::Command(cmd) => format!("command `{}`", cmd.command.join(" ")),
    }
}

fn load(l: &LoadSpec) -> String {
    let pace = match l.rate {
        Some(r) => format!("open loop at {} msgs/s", thousands(r)),
        None => format!("closed loop, {} in flight per connection", l.in_flight),
    };
    let processes = match l.processes {
        p if p > 1 && ramps_connections(l) => format!(" in {p} processes (the connection ramp's shards, starting together)"),
        p if p > 1 && !l.stages.is_empty() => format!(" in {p} processes (the ramp's shards, starting together)"),
        p if p > 1 && l.workload == wsbench_core::plan::Workload::Broadcast => format!(" in {p} processes (shards of the rooms, starting together)"),
        p if p > 1 => format!(" in {p} processes"),
        _ => String::new(),
    };
    let pace = if l.bulk { format!("bulk transfer (the size fit's cross-check): {pace}") } else { pace };
    let pace = match l.coalesce.period() {
        Some(d) if l.rate.is_some() => format!("{pace} (sends coalesced every {})", format_duration(d)),
        _ => pace,
    };
    let pace = if l.rx_timestamps == wsbench_core::plan::RxTimestamps::Kernel { format!("{pace}, kernel receive stamps") } else { pace };
    let deflate = if l.deflate.is_some() { ", offering permessage-deflate" } else { "" };
    let origin = l.origin.as_ref().map(|o| format!(", Origin {o}")).unwrap_or_default();
    format!(
        "{}{processes}, {pace}, {} B {} messages, {} engine{deflate}{origin}; warm-up {}, measured {}",
        plural(l.connections as usize, "connection"),
        l.size,
        l.mode.name(),
        l.engine.name(),
        format_duration(l.warmup),
        format_duration(l.duration)
    )
}

pub fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{} {what}s", thousands(n as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_names_every_configuration_and_the_time() {
        let s = Scenario::parse(
            Path::new("scenarios/x.toml"),
            "name = \"x\"\ntrials = 2\n[load]\nconnections = 20\nrate = 4000\nwarmup = \"1s\"\nduration = \"2s\"\ndrain_timeout = \"1s\"\n[[configs]]\nname = \"a\"\n[[configs]]\nname = \"b\"\nserver = { pause_every = \"500ms\", pause_for = \"20ms\" }\n",
        )
        .unwrap();
        let text = describe(&s, Path::new("results"));
        assert!(text.contains("2 configurations × 2 trials"), "{text}");
        assert!(text.contains("open loop at 4,000 msgs/s") && text.contains("pauses 20ms every 500ms"), "{text}");
        assert!(text.contains("order: a #1, b #1, a #2, b #2"), "{text}");
        // 4 trials × (1 + 2 + 1 + 0.02 s connecting + 0.5 s) = 18.08 s.
        assert!(text.contains("time: at most 18s"), "{text}");
        let s = Scenario::parse(Path::new("scenarios/x.toml"), "name = \"x\"\n[load]\nrate = 4000\ncoalesce = \"1ms\"\n[[configs]]\nname = \"a\"\n").unwrap();
        let text = describe(&s, Path::new("results"));
        assert!(text.contains("open loop at 4,000 msgs/s (sends coalesced every 1ms)"), "{text}");
    }
}
