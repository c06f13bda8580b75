//! Command-line entry points of `model`.

use super::ModelError;

/// Arguments (filled in by the model work).
#[derive(clap::Args, Debug, Default)]
pub struct InfoArgs {}

/// Placeholder until the model work lands.
pub fn info(_args: InfoArgs) -> Result<(), ModelError> {
    Err(ModelError::NotImplemented("info"))
}
