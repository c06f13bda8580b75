//! Errors of `quant`.

use std::path::PathBuf;

/// Everything that can go wrong in `quant`.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// A precision name that is not one of f32, f16, q8_0, q4_0.
    #[error("unknown precision {0:?} (expected f32, f16, bf16, q8_0 or q4_0)")]
    UnknownPrecision(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file exists but its contents are not a valid Kestrel model.
    #[error("{path}: not a valid Kestrel model file: {what}")]
    BadModelFile { path: PathBuf, what: String },
    /// A tensor operation failed in a given layer.
    #[error("layer {layer}: {source}")]
    Layer {
        layer: usize,
        #[source]
        source: candle_core::Error,
    },
    /// A tensor operation failed outside any layer.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The network itself could not be built or run.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// Image loading or detection failed.
    #[error(transparent)]
    Detect(#[from] crate::detect::DetectError),
    /// Bad command-line input.
    #[error("{0}")]
    Usage(String),
}
