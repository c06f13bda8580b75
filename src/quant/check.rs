//! `quantize --check`: how far each reduced precision drifts from f32 on real images.

use super::accuracy::{max_abs_diff, pseudo_ap50, Scored};
use super::loader::{load_any, PlanMode};
use super::{Precision, QuantError};
use crate::detect::{load_image, DetectOptions, Detection, Detector};
use candle_core::Device;
use std::path::{Path, PathBuf};

/// Threshold of the f32 detections taken as ground truth.
pub const TRUTH_CONF: f32 = 0.25;
/// Lower threshold for the reduced model, so boxes near the cut still rank (as in AP practice).
pub const FOUND_CONF: f32 = 0.1;

/// Agreement of one precision with f32 over a set of images.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRow {
    pub precision: Precision,
    pub ap50: f64,
    pub max_abs_raw: f32,
    pub truth_boxes: usize,
    pub found_boxes: usize,
}

struct Run {
    dets: Vec<Vec<Scored>>,
    raw: Vec<Vec<f32>>,
}

fn scored(d: &Detection) -> Scored {
    Scored {
        class: d.class_id,
        score: d.score,
        bbox: [d.bbox.x, d.bbox.y, d.bbox.x + d.bbox.w, d.bbox.y + d.bbox.h],
    }
}

fn run(
    cfg: Option<&Path>,
    weights: &Path,
    precision: Precision,
    images: &[PathBuf],
    conf: f32,
) -> Result<Run, QuantError> {
    let loaded = load_any(
        cfg,
        weights,
        &Device::Cpu,
        Some(precision),
        PlanMode::AllReduced,
    )?;
    let (w, h) = loaded.model.input_size();
    let opts = DetectOptions {
        width: w as u32,
        height: h as u32,
        conf,
        ..DetectOptions::default()
    };
    let det = Detector::new(loaded.model, opts)?;
    let mut out = Run {
        dets: Vec::new(),
        raw: Vec::new(),
    };
    for path in images {
        let img = load_image(path)?;
        let (input, transform) = det.preprocess(&img)?;
        let heads = det.infer(&input)?;
        for head in &heads {
            out.raw.push(head.raw.flatten_all()?.to_vec1()?);
        }
        let dets = det.postprocess(&heads, &transform)?;
        out.dets.push(dets.iter().map(scored).collect());
    }
    Ok(out)
}

/// Every precision in `precisions` against f32 (every conv reduced: the worst case).
pub fn check(
    cfg: Option<&Path>,
    weights: &Path,
    images: &[PathBuf],
    precisions: &[Precision],
) -> Result<Vec<CheckRow>, QuantError> {
    let truth = run(cfg, weights, Precision::F32, images, TRUTH_CONF)?;
    let mut rows = Vec::new();
    for &p in precisions {
        let found = run(cfg, weights, p, images, FOUND_CONF)?;
        let max_abs_raw = truth
            .raw
            .iter()
            .zip(&found.raw)
            .map(|(a, b)| max_abs_diff(a, b))
            .fold(0.0, f32::max);
        rows.push(CheckRow {
            precision: p,
            ap50: pseudo_ap50(&truth.dets, &found.dets),
            max_abs_raw,
            truth_boxes: truth.dets.iter().map(Vec::len).sum(),
            found_boxes: found.dets.iter().map(Vec::len).sum(),
        });
    }
    Ok(rows)
}

/// Table of [`check`] results.
pub fn format_rows(rows: &[CheckRow]) -> String {
    let mut s = format!(
        "{:<9} {:>12} {:>14} {:>11} {:>11}\n",
        "precision", "pseudo-AP50", "max|Δ| raw", "f32 boxes", "boxes≥0.1"
    );
    for r in rows {
        s += &format!(
            "{:<9} {:>12.4} {:>14.5} {:>11} {:>11}\n",
            r.precision.name(),
            r.ap50,
            r.max_abs_raw,
            r.truth_boxes,
            r.found_boxes
        );
    }
    s
}
