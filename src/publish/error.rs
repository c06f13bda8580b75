//! Errors of `publish`.

/// Everything that can go wrong in a sink.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Writing to a file sink failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The MAVLink sink could not start or was misconfigured.
    #[error(transparent)]
    Mavlink(#[from] crate::publish::mavlink::MavlinkError),
}
