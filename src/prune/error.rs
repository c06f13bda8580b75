//! Errors of `prune`.

/// Everything that can go wrong in `prune`.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The subcommand is not built yet.
    #[error("{0}: not implemented yet")]
    NotImplemented(&'static str),
}
