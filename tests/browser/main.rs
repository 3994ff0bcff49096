//! The quiz app as people and their tools use it, against the real binary
//! on a database seeded like one cohort of the reference set (100
//! students, 50 quizzes, 10 attempts per student): the browser journey in
//! headless Chromium with its accessibility and HTML checks (`journey`),
//! the teacher's cohort dashboard (`cohort`), and the Locust and quizload
//! journeys, whose cookie clients the pages' form rules must not break
//! (`load_tools`).
//!
//! Needs Debian's Chromium and, from npm, playwright-core, axe-core and
//! vnu-jar (`tests/browser/package.json`), and Locust: `scripts/test.sh`
//! installs them (see [`site::tools`]).

#[path = "../common/mod.rs"]
mod common;

/// This binary's databases, template and Redis keys (see `common::Suite`).
const SUITE: common::Suite = common::Suite {
    db_prefix: "qb_browser_",
    redis_prefix: "qbbrowser:",
    template_suffix: "browser_v1",
    template_lock: 727275,
};

mod cohort;
mod journey;
mod load_tools;
mod site;
