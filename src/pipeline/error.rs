//! Errors of `pipeline`.

/// Everything that can go wrong in `pipeline`.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The subcommand is not built yet.
    #[error("{0}: not implemented yet")]
    NotImplemented(&'static str),
}
