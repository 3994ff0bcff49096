//! Integration tests: the real server over HTTP on a random port, against
//! real PostgreSQL and Redis, each test with its own database and key prefix.

#[path = "../common/mod.rs"]
mod common;

/// This binary's databases, template and Redis keys (see `common::Suite`).
const SUITE: common::Suite = common::Suite {
    db_prefix: "qb_test_",
    redis_prefix: "qbtest:",
    template_suffix: "v1",
    template_lock: 727272,
};

mod app_cost;
mod attempts;
mod auth;
mod cli;
mod files;
mod helpers;
mod ops;
mod pages;
mod pool;
mod quizzes;
mod students;
mod techempower;
