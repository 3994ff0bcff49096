//! `quizload` entry point: parse the command line and hand over to
//! [`loadtests::cli`].

use clap::Parser;

fn main() -> anyhow::Result<()> {
    loadtests::cli::main(loadtests::cli::Cli::parse())
}
