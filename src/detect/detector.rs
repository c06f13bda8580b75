//! The detector: a model plus the options that turn its heads into detections, with each stage
//! callable on its own so the pipeline and `bench` can time and place them.

use super::postprocess::{candidates, nms, PostprocessConfig};
use super::preprocess::{preprocess, Placement, ResizeMode};
use super::{DetectError, Detection};
use crate::model::{Darknet, ForwardOptions, YoloOutput};
use candle_core::{Tensor, D};
use image::RgbImage;
use std::path::Path;
use std::time::Instant;

/// Options of a [`Detector`].
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Network input (width, height), multiples of 32; `None` = the cfg's `[net]` size.
    pub input: Option<(usize, usize)>,
    pub resize: ResizeMode,
    pub post: PostprocessConfig,
    pub forward: Option<Vec<(usize, f32)>>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            input: None,
            resize: ResizeMode::Letterbox,
            post: PostprocessConfig::default(),
            forward: None,
        }
    }
}

/// Milliseconds spent in each stage for one image.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimes {
    pub preprocess_ms: f64,
    pub forward_ms: f64,
    pub postprocess_ms: f64,
}

pub struct Detector {
    model: Darknet,
    net_w: usize,
    net_h: usize,
    config: DetectorConfig,
    forward_opts: ForwardOptions,
}

impl Detector {
    /// # Errors
    /// An input size that is not a positive multiple of 32, or thresholds outside 0..1.
    pub fn new(model: Darknet, config: DetectorConfig) -> Result<Detector, DetectError> {
        let (net_w, net_h) = config.input.unwrap_or(model.input_size());
        if net_w == 0 || net_h == 0 || net_w % 32 != 0 || net_h % 32 != 0 {
            return Err(DetectError::Config(format!(
                "input size {net_w}x{net_h}: width and height must be positive multiples of 32"
            )));
        }
        model.cfg().shapes(net_w, net_h)?;
        let p = config.post;
        if !(0.0..=1.0).contains(&p.conf) || !(0.0..=1.0).contains(&p.nms) {
            return Err(DetectError::Config(format!(
                "--conf {} and --nms {} must be within 0..1",
                p.conf, p.nms
            )));
        }
        let forward_opts = ForwardOptions {
            degrade: config.forward.clone().unwrap_or_default(),
        };
        Ok(Detector {
            model,
            net_w,
            net_h,
            config,
            forward_opts,
        })
    }

    pub fn model(&self) -> &Darknet {
        &self.model
    }

    /// (width, height) of the network input.
    pub fn input_size(&self) -> (usize, usize) {
        (self.net_w, self.net_h)
    }

    /// # Errors
    /// Candle errors.
    pub fn preprocess(&self, img: &RgbImage) -> Result<(Tensor, Placement), DetectError> {
        Ok(preprocess(
            img,
            self.net_w,
            self.net_h,
            self.config.resize,
            self.model.device(),
        )?)
    }

    /// # Errors
    /// Model errors.
    pub fn infer(&self, input: &Tensor) -> Result<Vec<YoloOutput>, DetectError> {
        Ok(self.model.forward_with(input, &self.forward_opts)?)
    }

    /// Heads of one image (batch index 0) → detections in image pixels.
    ///
    /// # Errors
    /// Candle errors reading the decoded tensors back.
    pub fn postprocess(
        &self,
        heads: &[YoloOutput],
        place: &Placement,
    ) -> Result<Vec<Detection>, DetectError> {
        let mut all = Vec::new();
        for h in heads {
            let d = h.decoded.get(0)?;
            let row_len = d.dim(D::Minus1)?;
            let rows: Vec<f32> = d.flatten_all()?.to_vec1()?;
            all.extend(candidates(&rows, row_len, self.config.post.conf, place));
        }
        Ok(nms(all, self.config.post.nms, self.config.post.max_det))
    }

    /// All three stages, with their times.
    ///
    /// # Errors
    /// As the stages.
    pub fn detect_timed(
        &self,
        img: &RgbImage,
    ) -> Result<(Vec<Detection>, StageTimes), DetectError> {
        let t0 = Instant::now();
        let (x, place) = self.preprocess(img)?;
        let t1 = Instant::now();
        let heads = self.infer(&x)?;
        let t2 = Instant::now();
        let dets = self.postprocess(&heads, &place)?;
        let t3 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        Ok((
            dets,
            StageTimes {
                preprocess_ms: ms(t0, t1),
                forward_ms: ms(t1, t2),
                postprocess_ms: ms(t2, t3),
            },
        ))
    }

    /// # Errors
    /// As the stages.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>, DetectError> {
        Ok(self.detect_timed(img)?.0)
    }
}

/// Reads an image file as RGB8, with an error naming the file when it is not a readable image.
///
/// # Errors
/// Missing file, unknown format, corrupt or truncated data.
pub fn load_image(path: &Path) -> Result<RgbImage, DetectError> {
    let bytes = std::fs::read(path).map_err(|e| DetectError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    decode_image(&bytes, &path.display().to_string())
}

/// Decodes image bytes (JPEG, PNG) as RGB8; `name` is used in errors.
///
/// # Errors
/// Unknown format, corrupt or truncated data.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<RgbImage, DetectError> {
    // The JPEG decoder fills a truncated scan with grey instead of failing: a JPEG whose tail has
    // no end-of-image marker (FF D9) is truncated, and detections on it would be silent garbage.
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let tail = &bytes[bytes.len().saturating_sub(4096)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err(DetectError::Image {
                path: name.to_string(),
                reason: "truncated JPEG (no end-of-image marker)".into(),
            });
        }
    }
    let img = image::load_from_memory(bytes).map_err(|e| DetectError::Image {
        path: name.to_string(),
        reason: e.to_string(),
    })?;
    Ok(img.to_rgb8())
}

/// Class names, one per line (Darknet `.names`); blank trailing lines ignored.
///
/// # Errors
/// Unreadable file.
pub fn load_names(path: &Path) -> Result<Vec<String>, DetectError> {
    let text = std::fs::read_to_string(path).map_err(|e| DetectError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    Ok(text
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}
