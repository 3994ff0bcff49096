//! The fault and bad-input suite (issue 5): the real `quizbench` binary,
//! started as a child process, pushed past its limits and its
//! dependencies broken under it — bad input, authentication abuse,
//! overload and slow clients, PostgreSQL and Redis down, hung, restarted
//! and paused, lost responses, handler panics, and a schemathesis run.
//! Healthy dependencies are the shared PostgreSQL (a database per test,
//! copied from a seeded template) and Redis (a key prefix per test);
//! dependencies a case stops or pauses are private instances it starts.
//! Cases run one at a time (`harness::serial`).

#[path = "../common/mod.rs"]
mod common;

/// This binary's databases, template and Redis keys (see `common::Suite`).
const SUITE: common::Suite = common::Suite {
    db_prefix: "qb_fault_",
    redis_prefix: "qbfault:",
    template_suffix: "fault1",
    template_lock: 727274,
};

mod auth;
mod bad_input;
mod deps;
mod harness;
mod overload;
mod schemathesis;
