//! wsbench-core: the contracts every wsbench process shares.
//!
//! The server, the load generator, the analysis and the orchestrator run as separate processes
//! and never link each other; what they agree on lives here: the scenario file, the per-process
//! plans, the result files, the message header, the monotonic clock and histogram settings.
//! No sockets, no async runtime, no argument parsing and no plotting belong in this crate.

pub mod alloc;
pub mod clock;
pub mod codec;
pub mod event;
pub mod header;
pub mod hist;
pub mod layout;
pub mod plan;
pub mod result;
pub mod scenario;
pub mod slo;
pub mod token;
#[cfg(feature = "tls-io")]
pub mod tls_io;
pub mod units;
pub mod warning;

/// Version of every JSON result file this build writes (`summary.json`, `server.json`, `run.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// The wsbench version, recorded in every result so a figure can be traced to the build that made it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
