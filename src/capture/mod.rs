//! Frame sources: USB camera (nokhwa), replay of image folders / VisDrone sequences,
//! video files (ffmpeg), and a synthetic scene. All behind [`FrameSource`].

pub mod cli;
mod error;

pub use error::*;

/// A decoded RGB frame with the facts every later stage needs to account for latency.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Sequence number assigned by the source, starting at 0, never reused.
    pub seq: u64,
    /// Capture time on CLOCK_MONOTONIC, in nanoseconds (the same clock MAVLink time sync uses).
    pub t_capture_ns: u64,
    /// Which source produced the frame (e.g. `camera:0`, `replay:/data/seq1`).
    pub source_id: String,
    /// Where the frame came from on disk, when it did (replay), for reports.
    pub path: Option<std::path::PathBuf>,
    /// The pixels, RGB8.
    pub image: image::RgbImage,
}

/// Anything that yields frames. `Ok(None)` = the source has ended (end of a replay);
/// an `Err` for one frame (corrupt JPEG) does not end the source.
pub trait FrameSource: Send {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError>;
}
