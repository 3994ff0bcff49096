//! quizload: the load generator and (later) experiment runner of quizbench.
//!
//! Module map:
//! - [`units`]: parsing of durations, ranges and lists the CLI accepts;
//! - [`stats`]: recorders, exact merging and summaries (HDR histograms);
//! - [`inference`]: confidence intervals and verdicts over trials;
//! - [`http`]: the lean HTTP/1.1 client path (serialise, parse, keep-alive);
//! - [`client`]: a VU's connection: reconnects, timeout, error kinds;
//! - [`schedule`]: the open model's arrival schedule;
//! - [`scenario`]: what VUs send (fixed request, quizbench scenarios);
//! - [`engine`]: threads, VUs, closed and open models, self-measurement;
//! - [`sysmon`]: CPU and memory readings of the generator and the machine;
//! - [`report`]: run reports (JSON with `rps`) and terminal output;
//! - [`target`]: a trivial in-process HTTP target for `calibrate`;
//! - [`server`]: the server under test as a process (CPU limits, sampling);
//! - [`experiment`]: experiment files, the runner, summaries, verdicts;
//! - [`progress`]: the experiment runner's progress bar and ETA;
//! - [`charts`]: SVG charts of experiment results;
//! - [`adapters`]: running wrk, hey and Locust and parsing their output;
//! - [`cli`]: the `quizload` command line.

pub mod analysis;
pub mod calibrate;
pub mod cli;
pub mod experiment;
pub mod generator;
pub mod load;
pub mod output;
pub mod stats;
pub mod tools;
pub mod units;
