//! `wsbench k8s render`: Kubernetes manifests that run a scenario's load as load-generator
//! shards, one pod each, from an Indexed Job.
//!
//! Kubernetes is the engine here, not something wsbench reimplements: the Job gives every pod
//! its index (`JOB_COMPLETION_INDEX`, read by `wsbench loadgen --shards N`), every pod gets the
//! same arguments and the same `--start-at`, and each writes `shard-<i>/` into a shared results
//! volume, from where `wsbench collect` merges them. This module only prints text; it never
//! talks to a cluster. See docs/k8s.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use wsbench_core::layout;
use wsbench_core::plan::LoadPlan;
use wsbench_core::scenario::{ConfigSpec, Scenario, ServerSpec};
use wsbench_core::units::parse_duration;

use crate::EXIT_USAGE;

/// `wsbench k8s ...`.
#[derive(Debug, clap::Subcommand)]
pub enum K8sCommand {
    /// Print the manifests (YAML, to stdout) that run SCENARIO's load as N load-generator shards
    /// from an Indexed Job: a ConfigMap with the scenario, a results volume claim, the built-in
    /// server as a Deployment and Service unless --target names the server, and the Job. Apply
    /// them with `kubectl apply -f -` right away: every shard waits for the same --start-at.
    Render(RenderArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// Scenario file (TOML).
    pub scenario: PathBuf,
    /// Container image holding the `wsbench` binary (built from the repository's Dockerfile).
    #[arg(long)]
    pub image: String,
    /// Load-generator shards (pods); the scenario's connections and rate are split between them.
    #[arg(long, value_name = "N")]
    pub shards: u32,
    /// Namespace of every object [default: kubectl's current one].
    #[arg(long)]
    pub namespace: Option<String>,
    /// WebSocket URL of the server under test, as the pods reach it; without it the scenario's
    /// built-in server is rendered too and the shards target its Service.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// The scenario's configuration to run, when it has several.
    #[arg(long, value_name = "NAME")]
    pub config: Option<String>,
    /// When every shard begins its warm-up (RFC 3339 UTC) [default: now + --start-in].
    #[arg(long, value_name = "TIME", conflicts_with = "start_in")]
    pub start_at: Option<String>,
    /// How long after rendering the shards begin, to leave time for scheduling pods and pulling
    /// the image.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub start_in: Duration,
    /// Name of this run: the results folder /results/<run-id>/ and the Job's name [default: UTC
    /// date and time, e.g. 20261125-101500].
    #[arg(long)]
    pub run_id: Option<String>,
    /// An existing PersistentVolumeClaim (ReadWriteMany) for results; without it one named
    /// wsbench-results is rendered.
    #[arg(long, value_name = "CLAIM")]
    pub results_claim: Option<String>,
}

/// What a render needs besides the scenario, resolved and checked.
#[derive(Debug, Clone)]
pub struct Render {
    pub image: String,
    pub shards: u32,
    pub namespace: Option<String>,
    pub target: Option<String>,
    pub start_at: String,
    pub run_id: String,
    pub results_claim: Option<String>,
}

/// Port of the rendered built-in server.
const SERVER_PORT: u16 = 9001;
/// Where the pods mount the results volume and the scenario.
const RESULTS_MOUNT: &str = "/results";
const SCENARIO_MOUNT: &str = "/etc/wsbench";
/// Results claim rendered when none is given.
const DEFAULT_CLAIM: &str = "wsbench-results";

pub fn main(cmd: K8sCommand) -> ExitCode {
    match cmd {
        K8sCommand::Render(args) => match render_main(args) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wsbench k8s render: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
    }
}

fn render_main(args: RenderArgs) -> Result<String, String> {
    let scenario = Scenario::load(&args.scenario).map_err(|e| e.to_string())?;
    let now = SystemTime::now();
    let start_at = match args.start_at {
        Some(t) => {
            wsbench_core::clock::parse_rfc3339(&t).map_err(|e| format!("--start-at {e}"))?;
            t
        }
        None => humantime::format_rfc3339_seconds(now + args.start_in).to_string(),
    };
    let run_id = match args.run_id {
        Some(id) => id,
        // 2026-11-25T10:15:00Z -> 20261125-101500, as `wsbench run` names its runs.
        None => humantime::format_rfc3339_seconds(now).to_string().chars().filter(|c| c.is_ascii_digit() || *c == 'T').collect::<String>().replace('T', "-"),
    };
    layout::check_name(&run_id).map_err(|e| format!("--run-id {run_id:?} {e}"))?;
    let r = Render { image: args.image, shards: args.shards, namespace: args.namespace, target: args.target, start_at, run_id, results_claim: args.results_claim };
    let config = pick_config(&scenario, args.config.as_deref())?;
    render(&scenario, config, &r)
}

/// The configuration to run: the one named, or the only one.
fn pick_config<'a>(scenario: &'a Scenario, name: Option<&str>) -> Result<&'a ConfigSpec, String> {
    if scenario.search.is_some() {
        return Err("a capacity search ([search]) is a sequence of runs that `wsbench run` orchestrates; render a fixed load instead (one rate)".into());
    }
    let names = || scenario.configs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    match name {
        Some(n) => scenario.configs.iter().find(|c| c.name == n).ok_or_else(|| format!("no configuration `{n}` in {}; it has: {}", scenario.path.display(), names())),
        None if scenario.configs.len() == 1 => Ok(&scenario.configs[0]),
        None => Err(format!("{} has {} configurations; choose one with --config ({})", scenario.path.display(), scenario.configs.len(), names())),
    }
}

/// A Kubernetes object name (DNS-1123 label): lowercase letters, digits and `-`, at most 63.
fn k8s_name(parts: &[&str]) -> String {
    let raw = parts.join("-").to_ascii_lowercase();
    let mut name: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name: String = name.trim_matches('-').chars().take(63).collect();
    name.trim_end_matches('-').to_owned()
}

/// The manifests for `config` of `scenario`, as one YAML stream.
pub fn render(scenario: &Scenario, config: &ConfigSpec, r: &Render) -> Result<String, String> {
    let load = &config.load;
    if r.shards == 0 {
        return Err("--shards must be at least 1".into());
    }
    // A connection ramp's shards each hold their places of every count: one open at least.
    let counts = || load.stages.iter().filter_map(|s| s.connections);
    let (fewest, most) = (counts().fold(load.connections, u32::min), counts().fold(load.connections, u32::max));
    if r.shards > fewest {
        let what = if fewest < load.connections { format!("the {fewest} connections its ramp falls to") } else { format!("the configuration's {fewest} connections") };
        return Err(format!("--shards {} exceeds {what}; every shard needs a connection open at every instant", r.shards));
    }
    if let Some(ns) = &r.namespace {
        if k8s_name(&[ns]) != *ns {
            return Err(format!("--namespace `{ns}` is not a Kubernetes name (lowercase letters, digits and '-')"));
        }
    }
    let base = k8s_name(&["wsbench", &scenario.name]);
    let server_name = k8s_name(&[&base, "server"]);
    let job_name = k8s_name(&[&base, &r.run_id]);
    let claim = r.results_claim.clone().unwrap_or_else(|| DEFAULT_CLAIM.to_owned());
    let server_plan = match (&r.target, &config.server) {
        (Some(_), _) => None,
        (None, ServerSpec::Builtin(b)) if b.tls => {
            return Err("the configuration's server has tls = true, whose throwaway certificate exists only within `wsbench run`; serve TLS with your own certificate and give --target wss://...".into())
        }
        (None, ServerSpec::Builtin(b)) if b.tokens => {
            return Err("the configuration's server has tokens = true, whose throwaway secret exists only within `wsbench run`; start the server with your own --token-secret and give --target".into())
        }
        // The pod's every address: the Service forwards to it.
        (None, ServerSpec::Builtin(b)) => Some((b.plan(format!("0.0.0.0:{SERVER_PORT}").parse().expect("literal address"), None, None), b.gate_args())),
        (None, ServerSpec::Command(_)) => return Err("the configuration's server is an external command; give --target with the URL at which the pods reach that server".into()),
    };
    let url = match &r.target {
        Some(t) => {
            wsbench_loadgen::args::target_addr(t).map_err(|e| e.replace("--url", "--target"))?;
            t.clone()
        }
        None => format!("ws://{server_name}:{SERVER_PORT}/"),
    };
    // The whole load; each pod takes its part with --shards and its JOB_COMPLETION_INDEX.
    let plan = LoadPlan { start_at: Some(r.start_at.clone()), out: Some(PathBuf::from(RESULTS_MOUNT).join(&r.run_id)), ..load.plan(&url) };
    let mut loadgen_args = vec!["loadgen".to_owned()];
    loadgen_args.extend(plan.to_args());
    loadgen_args.extend(["--shards".to_owned(), r.shards.to_string()]);

    // Objects of this run carry its id; the results claim and the server outlive one run.
    let labels = json!({ "app.kubernetes.io/name": "wsbench", "app.kubernetes.io/instance": base, "wsbench/run-id": r.run_id });
    let shared_labels = json!({ "app.kubernetes.io/name": "wsbench", "app.kubernetes.io/instance": base });
    let scenario_map = k8s_name(&[&base, &r.run_id, "scenario"]);
    let meta_with = |name: &str, labels: &Value| {
        let mut m = json!({ "name": name, "labels": labels });
        if let Some(ns) = &r.namespace {
            m["namespace"] = json!(ns);
        }
        m
    };
    let meta = |name: &str| meta_with(name, &labels);

    let mut docs: Vec<(String, Value)> = Vec::new();
    docs.push((
        "The scenario the shards run, kept beside them (wsbench collect --scenario records it).".into(),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&scenario_map),
            "data": { "scenario.toml": scenario.text },
        }),
    ));
    if r.results_claim.is_none() {
        docs.push((
            "Results: every shard writes /results/<run-id>/shard-<i>/ here. ReadWriteMany, since the shards run on several nodes\n(use --results-claim for an existing claim, e.g. NFS; on a one-node cluster such as kind, ReadWriteOnce works too).".into(),
            json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta_with(&claim, &shared_labels),
                "spec": { "accessModes": ["ReadWriteMany"], "resources": { "requests": { "storage": "1Gi" } } },
            }),
        ));
    }
    if let Some((sp, gate_args)) = &server_plan {
        let cpus = match sp.runtime {
            wsbench_core::plan::Runtime::CurrentThread => 1,
            wsbench_core::plan::Runtime::MultiThread => sp.workers.max(1),
        };
        let mut server_args = vec!["server".to_owned()];
        server_args.extend(sp.to_args());
        server_args.extend(gate_args.iter().cloned());
        let server_labels = json!({ "app.kubernetes.io/name": "wsbench", "app.kubernetes.io/instance": base, "app.kubernetes.io/component": "server" });
        docs.push((
            "The built-in server under test (the scenario's [server]); the shards reach it through the Service below.".into(),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta_with(&server_name, &shared_labels),
                "spec": {
                    "replicas": 1,
                    "selector": { "matchLabels": server_labels },
                    "template": {
                        "metadata": { "labels": server_labels },
                        "spec": { "containers": [{
                            "name": "server", "image": r.image, "command": ["wsbench"], "args": server_args,
                            "ports": [{ "containerPort": SERVER_PORT, "name": "ws" }],
                            "readinessProbe": { "httpGet": { "path": "/healthz", "port": SERVER_PORT } },
                            "resources": resources(cpus, 512),
                        }] },
                    },
                },
            }),
        ));
        docs.push((
            String::new(),
            json!({
                "apiVersion": "v1", "kind": "Service", "metadata": meta_with(&server_name, &shared_labels),
                "spec": { "selector": server_labels, "ports": [{ "name": "ws", "port": SERVER_PORT, "targetPort": SERVER_PORT }] },
            }),
        ));
    }
    // Memory: the histograms (a few MB per worker) plus what connections hold (tens of KiB
    // each at most, with the tungstenite engine's 8 KiB read buffers and in-flight messages).
    let per_shard = most.div_ceil(r.shards);
    let size_kib = load.size.div_ceil(1024) as u32;
    let memory_mib = 128 + 32 * load.threads as u32 + per_shard.saturating_mul(64 + 2 * size_kib * load.in_flight.min(64)) / 1024;
    docs.push((
        format!(
            "{} load-generator shards, one pod each, all beginning their warm-up at {} (--start-at).\n\
             Each pod runs `wsbench loadgen ... --shards {}`: it reads its index from JOB_COMPLETION_INDEX and takes connections\n\
             index, index+{}, ... of {} (of every count on a connection ramp) and their part of the open-loop schedule. backoffLimit 0: a retried shard would start after\n\
             --start-at and only be marked late. Requests equal limits (Guaranteed QoS) so that a shard is not throttled mid-run.\n\
             File descriptors: a shard needs one per connection ({} here); `wsbench loadgen` raises its soft RLIMIT_NOFILE to the hard\n\
             limit, which the container runtime sets (containerd and CRI-O: 1048576 by default; check `ulimit -Hn` in a pod).\n\
             Source ports: one pod opens at most ~28,000 connections to one server address (net.ipv4.ip_local_port_range).",
            r.shards, r.start_at, r.shards, r.shards, most, per_shard
        ),
        json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": meta(&job_name),
            "spec": {
                "completionMode": "Indexed",
                "completions": r.shards,
                "parallelism": r.shards,
                "backoffLimit": 0,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        "restartPolicy": "Never",
                        // The image's user (65532) owns what it writes on the results volume.
                        "securityContext": { "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532 },
                        // Spread over nodes: shards on one node would share its CPUs and NIC.
                        "topologySpreadConstraints": [{
                            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": { "matchLabels": labels },
                        }],
                        "containers": [{
                            "name": "loadgen", "image": r.image, "command": ["wsbench"], "args": loadgen_args,
                            "resources": resources(load.threads.max(1), memory_mib),
                            "volumeMounts": [
                                { "name": "results", "mountPath": RESULTS_MOUNT },
                                { "name": "scenario", "mountPath": SCENARIO_MOUNT, "readOnly": true },
                            ],
                        }],
                        "volumes": [
                            { "name": "results", "persistentVolumeClaim": { "claimName": claim } },
                            { "name": "scenario", "configMap": { "name": scenario_map } },
                        ],
                    },
                },
            },
        }),
    ));

    let mut out = format!(
        "# Rendered by wsbench {} from {} (configuration `{}`), run {}.\n\
         # Then: kubectl wait --for=condition=complete job/{job_name}{ns} --timeout=30m\n\
         #       copy /results/{} out of the {claim} volume (docs/k8s.md) and\n\
         #       wsbench collect <copied folder> --out results/{}/{} --scenario {}\n",
        wsbench_core::VERSION,
        scenario.path.display(),
        config.name,
        r.run_id,
        r.run_id,
        layout::slug(&scenario.name),
        r.run_id,
        scenario.path.display(),
        ns = r.namespace.as_ref().map(|n| format!(" -n {n}")).unwrap_or_default(),
    );
    for (comment, doc) in docs {
        out.push_str("---\n");
        for line in comment.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&serde_yaml_ng::to_string(&doc).map_err(|e| format!("cannot write YAML: {e}"))?);
    }
    Ok(out)
}

/// Equal requests and limits: the pod's QoS class is Guaranteed.
fn resources(cpus: usize, memory_mib: u32) -> Value {
    let r = json!({ "cpu": cpus.to_string(), "memory": format!("{memory_mib}Mi") });
    json!({ "requests": r, "limits": r })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kubernetes_labels() {
        assert_eq!(k8s_name(&["wsbench", "Quick Test_1"]), "wsbench-quick-test-1");
        assert_eq!(k8s_name(&["wsbench", "--x--"]), "wsbench-x");
        assert_eq!(k8s_name(&[&"a".repeat(80)]).len(), 63);
    }
}
