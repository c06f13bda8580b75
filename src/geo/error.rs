//! Errors of `geo`.

/// Camera calibration files that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not OpenCV FileStorage JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: field `{field}`: {reason}")]
    Field {
        path: String,
        field: &'static str,
        reason: String,
    },
}
