//! Frame sources: USB camera (nokhwa), replay of image folders / VisDrone sequences,
//! video files (ffmpeg), and a synthetic scene. All behind [`FrameSource`].
//!
//! Sources decode on the capture thread, so the inference thread only ever sees RGB pixels.

#[cfg(feature = "camera")]
pub mod camera;
pub mod cli;
mod error;
pub mod fake_camera;
pub mod replay;
pub mod spec;
pub mod synthetic;
pub mod video;

pub use error::*;
pub use spec::{open_source, SourceSpec};

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
    /// Frame rate the source delivers at, when it is paced (used for reports only).
    fn nominal_fps(&self) -> Option<f64> {
        None
    }
    /// How many times the source lost its device and reopened it so far (cameras).
    fn reopens(&self) -> u64 {
        0
    }
}

/// Now on CLOCK_MONOTONIC, in nanoseconds: comparable across threads and with driver timestamps.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// Sleeps until `start + n / fps`, so a paced source keeps real time without drift.
pub(crate) fn pace(start: std::time::Instant, n: u64, fps: Option<f64>) {
    if let Some(fps) = fps.filter(|f| *f > 0.0) {
        let due = start + std::time::Duration::from_secs_f64(n as f64 / fps);
        let now = std::time::Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}
