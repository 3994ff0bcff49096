//! Running the `quizload` binary from the integration tests, and scratch
//! folders for what they write (removed when dropped, also when a test
//! fails).

use std::path::Path;
use std::process::{Command, Output};

/// Runs `quizload ARGS` in `cwd` (the test's own when `None`).
pub fn run(args: &[&str], cwd: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quizload"));
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.output().expect("quizload runs")
}

/// Runs `quizload ARGS` in `cwd`, which must succeed: its stdout and stderr.
pub fn ok(args: &[&str], cwd: Option<&Path>) -> (String, String) {
    let out = run(args, cwd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "quizload {args:?} failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// A fresh scratch folder named after `name`.
pub fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("quizload-{name}-"))
        .tempdir()
        .expect("a scratch folder")
}
