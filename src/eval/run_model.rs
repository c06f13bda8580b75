//! `kestrel eval --cfg --weights`: runs the network over the split and keeps its detections as
//! rows in the toolkit's own order (sorted by score, at most 500 per image, as Kestrel writes them).

use super::dataset::DetDataset;
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
    pub degrade: Vec<(usize, f32)>,
}

fn model_err(e: impl std::fmt::Display) -> EvalError {
    EvalError::Model(e.to_string())
}

/// Fills `det` of every image with the model's detections (VisDrone id = model class + 1).
pub fn detect_all(
    ds: &DetDataset,
    images: &mut [ImageRecord],
    run: &ModelRun,
) -> Result<(), EvalError> {
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
    let n = images.len();
    for (i, img) in images.iter_mut().enumerate() {
        let path = ds.image_path(&img.name);
        let rgb = load_image(&path).map_err(model_err)?;
        let (input, tr) = detector.preprocess(&rgb).map_err(model_err)?;
        let heads = detector
            .model()
            .forward_with(&input, &fwd)
            .map_err(model_err)?;
        let dets = detector.postprocess(&heads, &tr).map_err(model_err)?;
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
        img.det = rows;
        eprint!("\reval: {}/{n} images", i + 1);
        let _ = std::io::stderr().flush();
    }
    eprintln!();
    Ok(())
}
