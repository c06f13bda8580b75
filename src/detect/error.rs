//! Errors of `detect`: every variant names the file, option or stage it comes from.

use std::path::PathBuf;

/// Everything that can go wrong between an image file and its detections.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// An image file that cannot be opened or decoded (not an image, truncated JPEG, ...).
    #[error("{path}: cannot read image: {why}")]
    Image { path: PathBuf, why: String },
    /// A file that cannot be read or written (names list, JSON output, annotated copy).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An option value that cannot work (size not a multiple of 32, threshold out of range, ...).
    #[error("bad option `{option}`: {why}")]
    BadOption { option: String, why: String },
    /// The class names file does not fit the model.
    #[error("{path}: {why}")]
    Names { path: PathBuf, why: String },
    /// Default real assets are absent.
    #[error("real assets missing: {path} not found; run scripts/fetch-assets.sh (or set KESTREL_ASSETS)")]
    MissingAssets { path: PathBuf },
    /// The network failed to load or run.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A model file or precision that cannot be loaded (boxed: `quant` errors wrap detect's).
    #[error(transparent)]
    Load(Box<crate::quant::QuantError>),
    /// A tensor operation failed in pre- or postprocessing.
    #[error("{stage}: {source}")]
    Tensor {
        stage: &'static str,
        source: candle_core::Error,
    },
    /// Writing an annotated image failed.
    #[error(transparent)]
    Publish(#[from] crate::publish::PublishError),
    /// Some of several images failed; each was already reported.
    #[error("{failed} of {total} images failed (see messages above)")]
    SomeImagesFailed { failed: usize, total: usize },
}

impl DetectError {
    /// Wraps a candle error with the stage it happened in.
    pub fn tensor(stage: &'static str) -> impl FnOnce(candle_core::Error) -> DetectError {
        move |source| DetectError::Tensor { stage, source }
    }
}

impl From<crate::quant::QuantError> for DetectError {
    fn from(e: crate::quant::QuantError) -> Self {
        DetectError::Load(Box::new(e))
    }
}
