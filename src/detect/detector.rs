//! `Detector` = a loaded network + detection options. The three stages are public separately
//! (and timed) because the pipeline and `kestrel bench` account for them one by one.

use std::time::{Duration, Instant};

use candle_core::Tensor;
use image::RgbImage;

use super::postprocess::{candidates_from_heads, nms, to_detection};
use super::preprocess::{preprocess, ResizeMode, Transform};
use super::{DetectError, Detection};
use crate::model::{Darknet, YoloOutput};

/// Thresholds and input geometry of detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectOptions {
    /// Network input width and height in pixels (multiples of 32).
    pub width: u32,
    pub height: u32,
    pub resize: ResizeMode,
    /// Minimum objectness × class probability.
    pub conf: f32,
    /// Same-class boxes overlapping more than this are suppressed.
    pub nms: f32,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            width: 416,
            height: 416,
            resize: ResizeMode::Letterbox,
            conf: 0.25,
            nms: 0.45,
        }
    }
}

impl DetectOptions {
    /// Rejects sizes the network cannot take and thresholds outside [0, 1].
    pub fn validate(&self) -> Result<(), DetectError> {
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if v == 0 || v % 32 != 0 {
                return Err(DetectError::BadOption {
                    option: name.into(),
                    why: format!("{v} is not a positive multiple of 32"),
                });
            }
        }
        for (name, v) in [("conf", self.conf), ("nms", self.nms)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(DetectError::BadOption {
                    option: name.into(),
                    why: format!("{v} is outside [0, 1]"),
                });
            }
        }
        Ok(())
    }
}

/// Wall time of each stage of one detection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    pub preprocess: Duration,
    pub forward: Duration,
    pub postprocess: Duration,
}

/// A network ready to turn images into detections.
pub struct Detector {
    model: Darknet,
    options: DetectOptions,
}

impl Detector {
    /// Wraps a loaded network; fails on unusable options.
    pub fn new(model: Darknet, options: DetectOptions) -> Result<Detector, DetectError> {
        options.validate()?;
        Ok(Detector { model, options })
    }

    pub fn model(&self) -> &Darknet {
        &self.model
    }

    pub fn options(&self) -> &DetectOptions {
        &self.options
    }

    /// Image → network input on the model's device, plus the transform mapping boxes back.
    pub fn preprocess(&self, img: &RgbImage) -> Result<(Tensor, Transform), DetectError> {
        let _span = tracing::debug_span!("preprocess").entered();
        let o = &self.options;
        preprocess(img, o.width, o.height, o.resize, self.model.device())
    }

    /// Runs the network on a `[B, 3, H, W]` input.
    pub fn infer(&self, input: &Tensor) -> Result<Vec<YoloOutput>, DetectError> {
        let _span = tracing::debug_span!("forward").entered();
        Ok(self.model.forward(input)?)
    }

    /// Heads of image 0 → thresholded, NMS-filtered detections in original-image pixels.
    pub fn postprocess(
        &self,
        heads: &[YoloOutput],
        transform: &Transform,
    ) -> Result<Vec<Detection>, DetectError> {
        let _span = tracing::debug_span!("decode_nms").entered();
        let decoded: Vec<&Tensor> = heads.iter().map(|h| &h.decoded).collect();
        let cands = candidates_from_heads(&decoded, 0, self.options.conf)?;
        let kept = nms(cands, self.options.nms);
        Ok(kept.iter().map(|c| to_detection(c, transform)).collect())
    }

    /// The whole chain on one image.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>, DetectError> {
        Ok(self.detect_timed(img)?.0)
    }

    /// The whole chain on one image, with each stage's wall time.
    pub fn detect_timed(
        &self,
        img: &RgbImage,
    ) -> Result<(Vec<Detection>, StageTimings), DetectError> {
        let t0 = Instant::now();
        let (input, transform) = self.preprocess(img)?;
        let t1 = Instant::now();
        let heads = self.infer(&input)?;
        // Decoded tensors are read back in postprocess; on CPU the forward is already done here.
        let t2 = Instant::now();
        let dets = self.postprocess(&heads, &transform)?;
        let t3 = Instant::now();
        let timings = StageTimings {
            preprocess: t1 - t0,
            forward: t2 - t1,
            postprocess: t3 - t2,
        };
        Ok((dets, timings))
    }
}
