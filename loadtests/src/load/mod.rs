//! One run or sweep against a target, with quizload's engine or an
//! external tool, from the options the CLI and the experiment runner share.
//!
//! - `args`: what to send ([`TargetArgs`]), how long and how hard
//!   ([`LoadArgs`]), which tool ([`ToolArgs`]);
//! - `prepare`: the target's address and what the VUs send ([`prepare`]);
//! - `config`: the engine configuration of a run ([`run_config`]);
//! - `run`: a run or a sweep with the engine ([`execute`], [`run`],
//!   [`sweep`]);
//! - `tool`: a run with wrk, hey or Locust ([`run_with_tool`]).
//!
//! It returns reports; printing them and writing `--json` files is its
//! callers' business (progress goes to stderr unless quiet). It must not
//! know about experiments or the command line's subcommands.

mod args;
mod config;
mod prepare;
mod run;
mod tool;

pub use args::{parse_header, LoadArgs, TargetArgs, ToolArgs};
pub use config::run_config;
pub use prepare::{prepare, Prepared};
pub use run::{execute, run, sweep};
pub use tool::run_with_tool;
