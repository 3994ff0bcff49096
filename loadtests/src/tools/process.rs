//! Running a tool: the command line it will run ([`command_preview`]),
//! launching it in a scratch directory that is removed afterwards, waiting
//! for it and reading its report back ([`run_tool`]). The one place that
//! spawns an external load tool; it knows each tool only through its
//! module's builder and parser. A command line it shows (in the preview,
//! an error, or a report's `source`) has its cookies and tokens masked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::Signal;

use super::hey::{hey_command, hey_import, parse_hey};
use super::locust::{locust_command, locust_env, locust_import, parse_locust_stats};
use super::wrk::{parse_wrk, plain_command, wrk_command, wrk_import, wrk_script, WrkResult};
use super::{fixed, missing_tool, Tool, ToolLoad, ToolRun};
use crate::analysis::report::ImportReport;
use crate::output::mask_secrets;
use crate::subprocess::tie_to_quizload;

/// A command line as a shell would read it back (`shlex`'s quoting). An
/// argument with a NUL byte, which no program can be given, is shown as a
/// Rust string list instead.
pub fn shell_join(args: &[String]) -> String {
    shlex::try_join(args.iter().map(String::as_str)).unwrap_or_else(|_| format!("{args:?}"))
}

/// The command line [`run_tool`] will run (its scratch files named
/// relative to its scratch directory), for display: secrets masked.
pub fn command_preview(r: &ToolRun) -> anyhow::Result<String> {
    let cmd = match r.tool {
        Tool::Quizload => bail!("quizload's own runs have no external command"),
        Tool::Wrk => {
            let script = wrk_script(fixed(r)?).map(|_| Path::new("request.lua"));
            wrk_command(r, script)?
        }
        Tool::Hey => {
            let body = (!fixed(r)?.body.is_empty()).then(|| Path::new("body"));
            hey_command(r, body)?
        }
        Tool::Locust => locust_command(r, Path::new("locust"))?,
    };
    Ok(mask_secrets(&shell_join(&cmd)).into_owned())
}

/// What a tool's run gave.
#[derive(Clone, Debug)]
pub struct ToolOutcome {
    pub report: ImportReport,
    /// Wall time of the tool's process.
    pub elapsed: Duration,
}

/// Launches the tool, waits for it and parses its report.
pub fn run_tool(r: &ToolRun) -> anyhow::Result<ToolOutcome> {
    let scratch = tempfile::Builder::new()
        .prefix(&format!("quizload-{}-", r.tool.name()))
        .tempdir()
        .context("cannot create a scratch directory")?;
    let (command, env, csv) = match r.tool {
        Tool::Quizload => bail!("quizload's own runs go through the engine, not run_tool"),
        Tool::Wrk => {
            let script = match wrk_script(fixed(r)?) {
                Some(text) => {
                    let p = scratch.path().join("request.lua");
                    std::fs::write(&p, text)?;
                    Some(p)
                }
                None => None,
            };
            (wrk_command(r, script.as_deref())?, vec![], None)
        }
        Tool::Hey => {
            let call = fixed(r)?;
            let body = if call.body.is_empty() {
                None
            } else {
                let p = scratch.path().join("body");
                std::fs::write(&p, &call.body)?;
                Some(p)
            };
            (hey_command(r, body.as_deref())?, vec![], None)
        }
        Tool::Locust => {
            let prefix = scratch.path().join("locust");
            (locust_command(r, &prefix)?, locust_env(r), Some(prefix))
        }
    };
    let started = Instant::now();
    let out = launch(r.tool, &r.program, &command, env)?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let source = mask_secrets(&shell_join(&command)).into_owned();
    if !out.status.success() {
        bail!(
            "{} failed ({}): {source}\n{}",
            r.tool.name(),
            out.status,
            mask_secrets(stderr.trim_end())
        );
    }
    let report = match (r.tool, &r.load) {
        (Tool::Wrk, ToolLoad::Fixed(c)) => wrk_import(
            &parse_wrk(&stdout).with_context(|| stderr.to_string())?,
            &c.name,
            &source,
        ),
        (Tool::Hey, ToolLoad::Fixed(c)) => hey_import(
            &parse_hey(&stdout).with_context(|| format!("{stdout}\n{stderr}"))?,
            &c.name,
            &source,
        ),
        (Tool::Locust, _) => {
            let p = PathBuf::from(format!("{}_stats.csv", csv.expect("locust csv").display()));
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("locust wrote no {}:\n{stderr}", p.display()))?;
            locust_import(&parse_locust_stats(&text)?, &source)
        }
        _ => unreachable!("checked by the command builders"),
    };
    Ok(ToolOutcome { report, elapsed })
}

/// Runs `wrk -t THREADS -c CONNS -d SECONDS URL` (wrk's plain GET, for
/// `calibrate --vs-wrk`) and parses its report.
pub fn run_wrk(
    url: &str,
    connections: usize,
    threads: usize,
    duration: Duration,
) -> anyhow::Result<WrkResult> {
    let command = plain_command(url, connections, threads, duration);
    let out = launch(Tool::Wrk, Path::new("wrk"), &command, vec![])?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Runs `command` (its program first) with `env` added, waits for it and
/// returns its output; a program that is not installed is reported with
/// the tool's install hint. The one place a tool's process is spawned.
fn launch(
    tool: Tool,
    program: &Path,
    command: &[String],
    env: Vec<(String, String)>,
) -> anyhow::Result<Output> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).envs(env);
    // SIGINT: each tool's own "stop now".
    tie_to_quizload(&mut cmd, Signal::SIGINT);
    cmd.output().map_err(|e| missing_tool(tool, program, e))
}

/// Whether the tool's executable is there (a path that exists, or a name
/// found on PATH), so that a missing tool is reported, with how to install
/// it, before anything is connected to or logged in.
pub fn check_installed(tool: Tool, program: &Path) -> anyhow::Result<()> {
    let found = if program.components().count() > 1 {
        program.is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
    };
    if found {
        Ok(())
    } else {
        Err(missing_tool(
            tool,
            program,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ))
    }
}

/// The executable of a tool: `bin` if given, else its name on PATH.
pub fn tool_program(tool: Tool, bin: Option<&Path>) -> PathBuf {
    bin.map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(tool.name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::test_support::strs;

    #[test]
    fn quotes_command_lines() {
        assert_eq!(
            shell_join(&strs(&[
                "hey",
                "-H",
                "Cookie: a=b",
                "it's",
                "http://h:1/x?a=1"
            ])),
            r#"hey -H 'Cookie: a=b' "it's" 'http://h:1/x?a=1'"#
        );
        let args = strs(&["wrk", "a b", "it's", "$HOME", ""]);
        assert_eq!(shlex::split(&shell_join(&args)), Some(args));
    }
}
