//! Sinks for detections: MAVLink to the flight controller, JSONL, annotated images.

pub mod annotate;
mod error;
pub mod frames;
pub mod jsonl;
pub mod mavlink;

pub use error::*;

use crate::detect::Detection;

/// What the pipeline hands every sink for one processed frame.
#[derive(Debug, Clone)]
pub struct FrameReport {
    pub seq: u64,
    pub t_capture_ns: u64,
    pub source_id: String,
    pub path: Option<std::path::PathBuf>,
    pub width: u32,
    pub height: u32,
    pub detections: Vec<Detection>,
    /// Capture → detections ready, milliseconds.
    pub latency_ms: f64,
}

/// The pipeline's health as the sinks learn it: a flight controller must be told when the
/// companion stops seeing, not left to guess from a quiet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Frames are processed again after a failure.
    Running,
    /// No detections can be produced: the model did not load, the source died, or inference
    /// failed on several frames in a row. The text says why.
    Failed(String),
}

/// A destination for detections. Runs on the publisher thread; must not block for long.
pub trait Sink: Send {
    fn name(&self) -> &str;
    fn publish(&mut self, report: &FrameReport) -> Result<(), PublishError>;
    /// Told on every change of the pipeline's health; most sinks have nothing to say about it.
    fn health(&mut self, _health: &Health) {}
    fn flush(&mut self) -> Result<(), PublishError> {
        Ok(())
    }
}
