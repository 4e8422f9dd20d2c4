//! `gatehouse`: sign-in and self-service account access for a staff record system.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    gatehouse_core::use_ring_for_tls();
    gatehouse::cli::run(gatehouse::cli::Cli::parse()).await
}
