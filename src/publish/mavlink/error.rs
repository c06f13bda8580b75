//! Errors of the MAVLink sink: only configuration and start-up fail; a dead link is a counter,
//! never an error returned to the pipeline.

#[derive(Debug, thiserror::Error)]
pub enum MavlinkError {
    #[error("[mavlink] `{field}`: {reason}")]
    Config { field: &'static str, reason: String },
    #[error("[mavlink] signing key file {path}: {reason}")]
    SigningKey { path: String, reason: String },
    #[error("[mavlink] camera calibration: {0}")]
    Calib(#[from] crate::geo::GeoError),
    #[error("[mavlink] cannot start thread `{name}`: {source}")]
    Thread {
        name: &'static str,
        source: std::io::Error,
    },
}
