//! The seam between the pipeline and the model: anything that turns an RGB frame into
//! detections with per-stage times. The real one is [`crate::detect::Detector`].

use crate::detect::{DetectError, Detection, Detector, StageTimes};
use image::RgbImage;

pub trait FrameDetector: Send {
    /// # Errors
    /// The model failed on this frame; the pipeline counts it and goes on.
    fn detect(&mut self, img: &RgbImage) -> Result<(Vec<Detection>, StageTimes), DetectError>;
}

impl FrameDetector for Detector {
    fn detect(&mut self, img: &RgbImage) -> Result<(Vec<Detection>, StageTimes), DetectError> {
        self.detect_timed(img)
    }
}
