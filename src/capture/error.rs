//! Errors of `capture`.

/// Everything that can go wrong in `capture`.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The subcommand is not built yet.
    #[error("{0}: not implemented yet")]
    NotImplemented(&'static str),
}
