//! `kestrel eval --cfg --weights`: runs the network over the split and keeps its detections as
//! rows in the toolkit's own order (sorted by score, at most 500 per image, as Kestrel writes them).

use super::dataset::DetDataset;
use super::vid::{gt_frames, VidDataset, VidRow, VidSequence};
use super::{EvalError, ImageRecord, Row};
use crate::detect::{load_image, DetectOptions, Detector};
use crate::model::{Darknet, ForwardOptions};
use candle_core::Device;
use std::io::Write as _;
use std::path::Path;

/// What the model run needs besides the dataset.
pub struct ModelRun<'a> {
    pub cfg: &'a Path,
    pub weights: &'a Path,
    pub size: Option<u32>,
    pub conf: f32,
    /// (stride, divisor ≥ 1) as `ForwardOptions::degrade` takes it: the map is shrunk by the divisor.
    pub degrade: Vec<(usize, f32)>,
}

fn model_err(e: impl std::fmt::Display) -> EvalError {
    EvalError::Model(e.to_string())
}

/// The loaded network with its options.
struct Runner {
    detector: Detector,
    fwd: ForwardOptions,
}

impl Runner {
    fn new(run: &ModelRun) -> Result<Self, EvalError> {
        let model = Darknet::load(run.cfg, run.weights, &Device::Cpu).map_err(model_err)?;
        let mut opts = DetectOptions {
            conf: run.conf,
            ..DetectOptions::default()
        };
        if let Some(s) = run.size {
            opts.width = s;
            opts.height = s;
        }
        let detector = Detector::new(model, opts).map_err(model_err)?;
        let fwd = ForwardOptions {
            degrade: run.degrade.clone(),
        };
        Ok(Runner { detector, fwd })
    }

    /// One image's detections as rows (VisDrone id = model class + 1), by score, at most 500.
    fn detect(&self, path: &Path) -> Result<Vec<Row>, EvalError> {
        let rgb = load_image(path).map_err(model_err)?;
        let (input, tr) = self.detector.preprocess(&rgb).map_err(model_err)?;
        let heads = self
            .detector
            .model()
            .forward_with(&input, &self.fwd)
            .map_err(model_err)?;
        let dets = self.detector.postprocess(&heads, &tr).map_err(model_err)?;
        let mut rows: Vec<Row> = dets
            .iter()
            .map(|d| {
                let b = &d.bbox;
                Row::new(
                    b.x.into(),
                    b.y.into(),
                    b.w.into(),
                    b.h.into(),
                    d.score.into(),
                    d.class_id as i64 + 1,
                )
            })
            .collect();
        rows.sort_by(|a, b| b.score.total_cmp(&a.score));
        rows.truncate(super::results::MAX_LINES);
        Ok(rows)
    }
}

fn progress(what: &str, i: usize, n: usize) {
    eprint!("\reval: {i}/{n} {what}");
    let _ = std::io::stderr().flush();
}

/// Fills `det` of every image with the model's detections.
pub fn detect_all(
    ds: &DetDataset,
    images: &mut [ImageRecord],
    run: &ModelRun,
) -> Result<(), EvalError> {
    let runner = Runner::new(run)?;
    let n = images.len();
    for (i, img) in images.iter_mut().enumerate() {
        img.det = runner.detect(&ds.image_path(&img.name))?;
        progress("images", i + 1, n);
    }
    eprintln!();
    Ok(())
}

/// Fills `det` of every sequence with the model's detections on the frames that have GT lines
/// (detections on other frames are never counted by the VID toolkit).
pub fn detect_all_vid(
    ds: &VidDataset,
    seqs: &mut [VidSequence],
    run: &ModelRun,
) -> Result<(), EvalError> {
    let runner = Runner::new(run)?;
    let n = seqs.len();
    for (i, seq) in seqs.iter_mut().enumerate() {
        let mut det = Vec::new();
        for frame in gt_frames(seq) {
            let rows = runner.detect(&ds.frame_path(&seq.name, frame))?;
            det.extend(rows.into_iter().map(|row| VidRow { frame, row }));
        }
        seq.det = det;
        progress("sequences", i + 1, n);
    }
    eprintln!();
    Ok(())
}
