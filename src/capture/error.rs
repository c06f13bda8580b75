//! Errors of `capture`.

use std::path::PathBuf;

/// Everything that can go wrong while producing frames. `Decode` is per frame: the source
/// skips that frame and keeps going; the others end or prevent the source.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A `--source` string that is not `camera:N`, `replay:DIR`, `video:FILE` or `synthetic`.
    #[error("--source {spec}: {reason}")]
    Spec { spec: String, reason: String },
    /// A replay folder with no images in it.
    #[error("{path}: no images (*.jpg, *.jpeg, *.png) found")]
    Empty { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One frame could not be decoded (corrupt or truncated JPEG); the source continues.
    #[error("{path}: cannot decode frame: {reason}")]
    Decode { path: PathBuf, reason: String },
    /// The ffmpeg / ffprobe binaries are not installed.
    #[error("video:{path}: `{tool}` not found: install ffmpeg (apt install ffmpeg, or scripts/setup.sh)")]
    FfmpegMissing { path: PathBuf, tool: &'static str },
    /// ffprobe / ffmpeg failed on the file.
    #[error("video:{path}: {reason}")]
    Video { path: PathBuf, reason: String },
    /// A camera could not be opened or read.
    #[error("camera {device}: {reason}")]
    Camera { device: String, reason: String },
    /// The camera source is not compiled in.
    #[error("cameras need a build with the camera feature: cargo build --release --features camera (needs libclang-dev and nasm: scripts/setup.sh)")]
    CameraNotBuilt,
}
