//! Command-line entry points of `pipeline`.

use super::PipelineError;

/// Arguments (filled in by the pipeline work).
#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {}

/// Placeholder until the pipeline work lands.
pub fn run(_args: RunArgs) -> Result<(), PipelineError> {
    Err(PipelineError::NotImplemented("run"))
}
