//! One run or sweep against a target, with quizload's engine or an
//! external tool, from the options the CLI and the experiment runner share.
//!
//! - `args`: what to send ([`TargetArgs`]), how long and how hard
//!   ([`LoadArgs`]), which tool ([`ToolArgs`]);
//! - `prepare`: the target's address and what the VUs send ([`prepare`]);
//! - `config`: the engine configuration of a run ([`run_config`]);
//! - `preflight`: one connect before a run, so that a target where nothing
//!   listens is an error at once ([`preflight`]), and how errors name the
//!   tool, step and URL ([`step`]);
//! - `run`: a run or a sweep with the engine ([`execute`], [`run`],
//!   [`sweep`]);
//! - `tool`: a run with wrk, hey or Locust ([`run_with_tool`]);
//! - `threshold`: pass/fail criteria on a run's figures ([`Threshold`],
//!   [`check_thresholds`]).
//!
//! Options that do not go together are [`UsageError`]s, which the command
//! line tells apart from errors of the run.
//!
//! It returns reports; printing them and writing `--json` files is its
//! callers' business (progress goes to stderr unless quiet). It must not
//! know about experiments or the command line's subcommands.

mod args;
mod config;
mod preflight;
mod prepare;
mod run;
mod threshold;
mod tool;

pub use args::{parse_header, usage, LoadArgs, TargetArgs, ToolArgs, UsageError};
pub use config::run_config;
pub use preflight::{preflight, step, PREFLIGHT_TIMEOUT};
pub use prepare::{prepare, Prepared};
pub use run::{execute, run, sweep};
pub use threshold::{
    check as check_thresholds, Threshold, ThresholdResult, SYNTAX as THRESHOLD_SYNTAX,
};
pub use tool::run_with_tool;
