//! Command-line entry points of `prune`.

use super::PruneError;

/// Arguments (filled in by the prune work).
#[derive(clap::Args, Debug, Default)]
pub struct PruneArgs {}

/// Placeholder until the prune work lands.
pub fn prune(_args: PruneArgs) -> Result<(), PruneError> {
    Err(PruneError::NotImplemented("prune"))
}

/// Arguments (filled in by the prune work).
#[derive(clap::Args, Debug, Default)]
pub struct SparsityArgs {}

/// Placeholder until the prune work lands.
pub fn sparsity(_args: SparsityArgs) -> Result<(), PruneError> {
    Err(PruneError::NotImplemented("sparsity"))
}
