//! Process-model tests: the real `quizbench` binary started as a child
//! process in each model, checked from outside (/proc, sockets, response
//! headers), and the supervisor's fault handling (kill -9, SIGTERM, SIGHUP,
//! recycling, SIGKILL of the supervisor, boot failures, timeouts, the
//! connection budget). Each test has its own database and Redis prefix and
//! kills its server when it ends.

mod budget;
mod faults;
mod harness;
mod load;
mod models;
mod timeouts;
