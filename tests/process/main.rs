//! Process-model tests: the real `quizbench` binary started as a child
//! process in each model, checked from outside (/proc, sockets, response
//! headers), and the supervisor's fault handling (kill -9, SIGTERM, SIGHUP,
//! recycling, SIGKILL of the supervisor, boot failures, timeouts, the
//! connection budget). Each test has its own database and Redis prefix and
//! kills its server when it ends.

#[path = "../common/mod.rs"]
mod common;

/// This binary's databases, template and Redis keys (see `common::Suite`).
const SUITE: common::Suite = common::Suite {
    db_prefix: "qb_proc_",
    redis_prefix: "qbproc:",
    template_suffix: "proc1",
    template_lock: 727273,
};

mod budget;
mod faults;
mod harness;
mod load;
mod models;
mod timeouts;
