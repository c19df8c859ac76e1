//! `wsbench`: the one command users type. Parses arguments and hands them to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    wsbench::main_with(wsbench::Cli::parse(), argv)
}
