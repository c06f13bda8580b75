//! Errors of `model`: every one says where (file and line, layer, byte counts).

/// Everything that can go wrong loading or running a Darknet model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A malformed cfg: file, line, key and what is wrong.
    #[error("{file}:{line}: {}{reason}", if key.is_empty() { String::new() } else { format!("key '{key}': ") })]
    Cfg {
        file: String,
        line: usize,
        key: String,
        reason: String,
    },
    /// A `.weights` file that does not match its cfg.
    #[error("{path}: {reason}")]
    Weights { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// An input the network cannot take (size not a multiple of 32, wrong channels).
    #[error("input: {0}")]
    Input(String),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

impl ModelError {
    pub fn cfg(file: &str, line: usize, key: &str, reason: impl Into<String>) -> ModelError {
        ModelError::Cfg {
            file: file.to_string(),
            line,
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    pub fn weights(path: &str, reason: impl Into<String>) -> ModelError {
        ModelError::Weights {
            path: path.to_string(),
            reason: reason.into(),
        }
    }
}
