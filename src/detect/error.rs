//! Errors of `detect`.

/// Everything that can go wrong in `detect`.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The subcommand is not built yet.
    #[error("{0}: not implemented yet")]
    NotImplemented(&'static str),
}
