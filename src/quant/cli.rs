//! Command-line entry points of `quant`.

use super::QuantError;

/// Arguments (filled in by the quant work).
#[derive(clap::Args, Debug, Default)]
pub struct QuantizeArgs {}

/// Placeholder until the quant work lands.
pub fn quantize(_args: QuantizeArgs) -> Result<(), QuantError> {
    Err(QuantError::Usage("quantize: not implemented yet".into()))
}
