//! Errors of `eval`.

use std::path::PathBuf;

/// Everything that can go wrong in `eval`; each variant says where (file, line, field).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of an annotation or result file is not what the format says.
    #[error("{path}:{line}: {reason}")]
    BadLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// An image's size could not be read from its header.
    #[error("{path}: cannot read the image size: {reason}")]
    ImageSize { path: PathBuf, reason: String },
    /// The dataset folder does not look like VisDrone DET or VID.
    #[error("{path}: {reason}")]
    Dataset { path: PathBuf, reason: String },
    /// The result file of an annotated image or sequence is missing.
    #[error("{path}: result file missing (one per annotation file is needed)")]
    MissingResult { path: PathBuf },
    /// A command-line value is not valid.
    #[error("{flag}: {reason}")]
    BadArg { flag: &'static str, reason: String },
    /// Writing the JSON report or a plot failed.
    #[error("{path}: {reason}")]
    Output { path: PathBuf, reason: String },
    /// The model path is not available in this build.
    #[error("{0}")]
    Model(String),
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    }
}
