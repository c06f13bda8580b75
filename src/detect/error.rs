//! Errors of `detect`.

use crate::model::ModelError;

/// Everything that can go wrong between an image file and its detections.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A file that is not a readable image (not an image at all, corrupt or truncated JPEG).
    #[error("{path}: cannot decode image: {reason}")]
    Image { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A bad option value (size not a multiple of 32, thresholds out of range).
    #[error("{0}")]
    Config(String),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// Some images of a batch failed; each was reported as it happened.
    #[error("{failed} of {total} images failed")]
    SomeFailed { failed: usize, total: usize },
}
