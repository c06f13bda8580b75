//! From an image to detections: letterbox / stretch preprocessing, YOLO decode, NMS,
//! and the `Detection` every downstream stage consumes.

// Errors carry large ModelError values; they happen once per image, never in a hot loop.
#![allow(clippy::result_large_err)]

mod bench;
pub mod cli;
mod detector;
mod error;
pub mod input;
pub mod postprocess;
pub mod preprocess;

pub use detector::{DetectOptions, Detector, StageTimings};
pub use error::*;
pub use input::{load_image, load_names};
pub use preprocess::{ResizeMode, Transform};

/// An axis-aligned box in original-image pixels: top-left corner, width and height
/// (the VisDrone and COCO convention, so results files need no conversion).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

/// One detected object. `score` = objectness × class probability, as Darknet reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detection {
    pub class_id: usize,
    pub score: f32,
    pub bbox: BBox,
}
