//! Errors of `prune`.

use std::path::PathBuf;

/// Everything that can go wrong in `prune`.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The cfg text is malformed or uses something pruning cannot handle.
    #[error("{path}:{line}: {msg}")]
    Cfg {
        path: String,
        line: usize,
        msg: String,
    },
    /// The `.weights` file does not fit the cfg.
    #[error("{path}: {msg}")]
    Weights { path: PathBuf, msg: String },
    /// A layer's wiring cannot be pruned (e.g. a shortcut over a concatenation).
    #[error("layer {layer}: {msg}")]
    Layer { layer: usize, msg: String },
    /// A command-line value is out of range.
    #[error("--{flag} {value}: {msg}")]
    Arg {
        flag: &'static str,
        value: String,
        msg: String,
    },
    /// The cfg has no batch-normalized convolution, so there is no γ to prune by.
    #[error("{0}: no [convolutional] layer has batch_normalize=1; nothing can be pruned")]
    NoBatchNorm(String),
    /// Writing the histogram image failed.
    #[error("{path}: {msg}")]
    Image { path: PathBuf, msg: String },
}

impl PruneError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
