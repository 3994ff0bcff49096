//! quizload: the load generator and experiment runner of quizbench, as a
//! library under the `quizload` binary.
//!
//! Module map, lowest layer first (a module uses only its own layer and the
//! ones below; `docs/architecture.md` has the table):
//! 1. [`units`]: durations, ranges and lists as people write them;
//!    [`output`]: results as JSON files; [`stats`]: recorders, exact merging
//!    and summaries (HDR histograms); [`prometheus`]: `/metrics` text read
//!    and summed; [`subprocess`]: the processes quizload starts, tied to it;
//! 2. [`generator`]: the engine (threads, VUs, closed and open models), a
//!    VU's connection, HTTP/1.1, the scenarios, the open model's schedule,
//!    the generator's self-measurement;
//! 3. [`analysis`]: run, sweep and tool reports with the saturation
//!    judgement, text and Markdown tables, confidence intervals and
//!    verdicts, SVG charts;
//! 4. [`tools`]: wrk, hey and Locust (command, parser, importer) and the
//!    one place their processes run;
//! 5. [`load`]: a run or sweep from the options the CLI and the experiment
//!    runner share, with the engine or a tool;
//! 6. [`calibrate`]: the generator's ceiling on this machine (and its
//!    trivial target); [`experiment`]: experiment files, the runner, the
//!    server under test, sampling, summaries, reports, compare;
//! 7. [`cli`]: the `quizload` command line, which only parses, calls,
//!    prints and writes.

pub mod analysis;
pub mod calibrate;
pub mod cli;
pub mod experiment;
pub mod generator;
pub mod load;
pub mod output;
pub mod prometheus;
pub mod stats;
pub mod subprocess;
pub mod tools;
pub mod units;
