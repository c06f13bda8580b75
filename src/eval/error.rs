//! Errors of `eval`.

/// Everything that can go wrong in `eval`.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The subcommand is not built yet.
    #[error("{0}: not implemented yet")]
    NotImplemented(&'static str),
}
