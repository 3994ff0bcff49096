//! Running the `quizload` binary from the integration tests, and scratch
//! folders for what they write (removed when dropped, also when a test
//! fails).

use std::ffi::OsStr;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `quizload ARGS` in `cwd` (the test's own when `None`).
pub fn run<S: AsRef<OsStr>>(args: &[S], cwd: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quizload"));
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.output().expect("quizload runs")
}

/// Runs `quizload ARGS` in `cwd`, which must succeed: its stdout and stderr.
pub fn ok<S: AsRef<OsStr> + Debug>(args: &[S], cwd: Option<&Path>) -> (String, String) {
    let out = run(args, cwd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "quizload {args:?} failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// The words of a shell-quoted command line: `run URL -H 'X-Test: yes'`.
pub fn words(line: &str) -> Vec<String> {
    shlex::split(line).unwrap_or_else(|| panic!("not a well-quoted command line: {line}"))
}

/// A fresh scratch folder named after `name`.
pub fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("quizload-{name}-"))
        .tempdir()
        .expect("a scratch folder")
}

/// Writes `body` to `path` and makes it executable (a stand-in binary).
pub fn write_script(path: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

/// `path` quoted for a command line given to [`words`].
pub fn quoted(path: &Path) -> String {
    shlex::try_quote(path.to_str().expect("a UTF-8 path"))
        .expect("a path without NUL")
        .into_owned()
}

/// A stand-in for the quizbench binary, `dir/fake-quizbench`: it runs the
/// shell lines `first`, then for `seed` logs `seeded` to `dir/seed.log`,
/// and for `serve` runs the shell lines `on_serve` and execs quizload's
/// trivial target on `$BIND`; anything else exits 2.
pub fn stand_in_server(dir: &Path, first: &str, on_serve: &str) -> PathBuf {
    let body = format!(
        r#"#!/bin/sh
{first}
for a in "$@"; do
  case "$a" in
    seed) echo seeded >> "{dir}/seed.log"; exit 0 ;;
    serve)
{on_serve}
      exec "{ql}" target --bind "$BIND" ;;
  esac
done
exit 2
"#,
        dir = dir.display(),
        ql = env!("CARGO_BIN_EXE_quizload")
    );
    write_script(&dir.join("fake-quizbench"), &body)
}
