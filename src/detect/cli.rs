//! Command-line entry points of `detect`.

use super::DetectError;

/// Arguments (filled in by the detect work).
#[derive(clap::Args, Debug, Default)]
pub struct DetectArgs {}

/// Placeholder until the detect work lands.
pub fn detect(_args: DetectArgs) -> Result<(), DetectError> {
    Err(DetectError::NotImplemented("detect"))
}

/// Arguments (filled in by the detect work).
#[derive(clap::Args, Debug, Default)]
pub struct BenchArgs {}

/// Placeholder until the detect work lands.
pub fn bench(_args: BenchArgs) -> Result<(), DetectError> {
    Err(DetectError::NotImplemented("bench"))
}
