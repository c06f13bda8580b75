//! Errors of `pipeline`.

use crate::capture::CaptureError;
use crate::config::ConfigError;
use crate::detect::DetectError;
use crate::publish::PublishError;

/// Everything that stops a run from starting or finishing cleanly. Per-frame failures are
/// counted in the stats instead.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("pipeline thread: {0}")]
    Thread(String),
}
