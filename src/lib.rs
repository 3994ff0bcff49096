//! quizbench: a quiz/login API server on PostgreSQL and Redis that runs in
//! every process model (single async loop, pre-forked workers, a thread
//! pool, thread-per-core), built to be load tested.
//!
//! `main.rs` parses the command line and hands over to [`process::run`];
//! everything else is a library that the tests drive.

pub mod app;
pub mod cache;
pub mod classifier;
pub mod config;
pub mod cpu;
pub mod db;
pub mod domain;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod password;
pub mod process;
pub mod procfs;
pub mod redis_pool;
pub mod routes;
pub mod seed;
pub mod server;
pub mod sessions;
pub mod state;
pub mod telemetry;
