//! The scale-out deployment without Docker: quizbench replicas as processes
//! on loopback ports, behind HAProxy with the project's balancer
//! configuration (deploy/haproxy/haproxy.cfg), with a private PgBouncer
//! configured by deploy/pgbouncer/render-config.sh between them and the
//! test PostgreSQL. The same files run in the compose scale-out
//! (deploy/compose.scale.yml, exercised by scripts/compose-smoke.sh).
//!
//! Needs `haproxy` and `pgbouncer` on PATH or in /usr/sbin (scripts/test.sh
//! installs Debian's packages when they are missing and it may);
//! `QB_SKIP_SCALEOUT=1` skips the tests that need them. Each test has its
//! own database, Redis prefix, ports and temporary directory, and stops
//! every process it started.

#[path = "../common/mod.rs"]
mod common;

/// This binary's databases, template and Redis keys (see `common::Suite`).
const SUITE: common::Suite = common::Suite {
    db_prefix: "qb_scale_",
    redis_prefix: "qbscale:",
    template_suffix: "scale1",
    template_lock: 727275,
};

mod journey;
mod scale_out;
mod start_up;
mod tools;
