//! Command-line entry points of `capture`.

use super::CaptureError;

/// Arguments (filled in by the capture work).
#[derive(clap::Args, Debug, Default)]
pub struct CamerasArgs {}

/// Placeholder until the capture work lands.
pub fn cameras(_args: CamerasArgs) -> Result<(), CaptureError> {
    Err(CaptureError::NotImplemented("cameras"))
}
