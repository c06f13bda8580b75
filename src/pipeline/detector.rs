//! The seam between the pipeline and the model: anything that turns an RGB frame into
//! detections with per-stage times. The real one is [`crate::detect::Detector`].

use crate::detect::{DetectError, Detection, Detector};
use image::RgbImage;

/// Milliseconds per stage of one frame, as the stats record them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    pub preprocess_ms: f64,
    pub forward_ms: f64,
    pub postprocess_ms: f64,
}

pub trait FrameDetector: Send {
    /// # Errors
    /// The model failed on this frame; the pipeline counts it and goes on.
    fn detect(&mut self, img: &RgbImage) -> Result<(Vec<Detection>, StageTimes), DetectError>;
}

impl FrameDetector for Detector {
    fn detect(&mut self, img: &RgbImage) -> Result<(Vec<Detection>, StageTimes), DetectError> {
        let (dets, t) = self.detect_timed(img)?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        Ok((
            dets,
            StageTimes {
                preprocess_ms: ms(t.preprocess),
                forward_ms: ms(t.forward),
                postprocess_ms: ms(t.postprocess),
            },
        ))
    }
}
