//! The load generator: everything that sends requests and records what
//! happened, and nothing that judges or formats it.
//!
//! - [`engine`]: worker threads, virtual users, the closed and open models,
//!   the run's parameters and its raw outcome;
//! - [`client`]: a VU's connection (reconnects, timeout, error kinds);
//! - [`http`]: HTTP/1.1 on the wire (the lean client path, and a blocking
//!   request for probes);
//! - [`scenarios`]: what VUs send (a fixed request, the quizbench scenarios,
//!   the journey);
//! - [`schedule`]: the open model's arrival schedule;
//! - [`sysmon`]: CPU and memory readings of the generator and the machine.
//!
//! It records into [`crate::stats`] recorders and must not reach above its
//! layer: reports, external tools, experiments and the CLI use it, never the
//! other way round.

pub mod client;
pub mod engine;
pub mod http;
pub mod scenarios;
pub mod schedule;
pub mod sysmon;
