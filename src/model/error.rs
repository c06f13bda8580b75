//! Errors of `model`.

/// Everything that can go wrong in `model`.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The subcommand is not built yet.
    #[error("{0}: not implemented yet")]
    NotImplemented(&'static str),
}
