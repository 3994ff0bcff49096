//! `quizload` entry point: parse the command line and hand over to
//! [`loadtests::cli`], which says the exit status.

use clap::Parser;

fn main() -> std::process::ExitCode {
    loadtests::cli::main(loadtests::cli::Cli::parse())
}
