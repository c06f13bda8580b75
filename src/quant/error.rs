//! Errors of `quant`.

/// Everything that can go wrong in `quant`.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// The subcommand is not built yet.
    #[error("{0}: not implemented yet")]
    NotImplemented(&'static str),
}
