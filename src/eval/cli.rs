//! Command-line entry points of `eval`.

use super::EvalError;

/// Arguments (filled in by the eval work).
#[derive(clap::Args, Debug, Default)]
pub struct EvalArgs {}

/// Placeholder until the eval work lands.
pub fn eval(_args: EvalArgs) -> Result<(), EvalError> {
    Err(EvalError::NotImplemented("eval"))
}
