//! `weft logs` (scaffold: the log analyzer replaces this file).

use std::process::ExitCode;

/// Arguments of `weft logs`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the log analyzer is not built yet")
}
