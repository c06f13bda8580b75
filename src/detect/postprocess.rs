//! Decoded head rows → detections: score = objectness × class probability (Darknet), threshold,
//! per-class greedy NMS, boxes mapped back to original-image pixels and clipped.

use super::preprocess::Placement;
use super::{BBox, Detection};

/// Thresholds of the post-processing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PostprocessConfig {
    /// Minimum objectness × class probability.
    pub conf: f32,
    /// IoU above which a lower-scoring box of the same class is suppressed.
    pub nms: f32,
    /// At most this many detections per image (highest scores kept).
    pub max_det: usize,
}

impl Default for PostprocessConfig {
    fn default() -> Self {
        PostprocessConfig {
            conf: 0.25,
            nms: 0.45,
            max_det: 500,
        }
    }
}

/// Candidates from decoded rows `[cx, cy, w, h, obj, cls…]` (network-input pixels).
pub fn candidates(rows: &[f32], row_len: usize, conf: f32, place: &Placement) -> Vec<Detection> {
    let mut out = Vec::new();
    for r in rows.chunks_exact(row_len) {
        let obj = r[4];
        // NaN-safe: a NaN objectness fails this comparison and the row is skipped.
        if obj.partial_cmp(&conf) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let (x0, y0) = place.to_image(r[0] - r[2] / 2.0, r[1] - r[3] / 2.0);
        let (x1, y1) = place.to_image(r[0] + r[2] / 2.0, r[1] + r[3] / 2.0);
        let (iw, ih) = (place.image_w as f32, place.image_h as f32);
        let (x0, y0, x1, y1) = (
            x0.clamp(0.0, iw),
            y0.clamp(0.0, ih),
            x1.clamp(0.0, iw),
            y1.clamp(0.0, ih),
        );
        if x1 <= x0 || y1 <= y0 || x0.is_nan() || y0.is_nan() || x1.is_nan() || y1.is_nan() {
            continue;
        }
        for (class_id, &p) in r[5..].iter().enumerate() {
            let score = obj * p;
            if score > conf {
                out.push(Detection {
                    class_id,
                    score,
                    bbox: BBox {
                        x: x0,
                        y: y0,
                        w: x1 - x0,
                        h: y1 - y0,
                    },
                });
            }
        }
    }
    out
}

/// Intersection over union of two boxes (0 when either is empty).
pub fn iou(a: &BBox, b: &BBox) -> f32 {
    let ix = ((a.x + a.w).min(b.x + b.w) - a.x.max(b.x)).max(0.0);
    let iy = ((a.y + a.h).min(b.y + b.h) - a.y.max(b.y)).max(0.0);
    let inter = ix * iy;
    let union = a.w * a.h + b.w * b.h - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Greedy per-class NMS; output sorted by descending score, at most `max_det`.
pub fn nms(mut dets: Vec<Detection>, iou_threshold: f32, max_det: usize) -> Vec<Detection> {
    dets.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.class_id.cmp(&b.class_id))
    });
    let mut keep: Vec<Detection> = Vec::new();
    for d in dets {
        if keep.len() >= max_det {
            break;
        }
        if keep
            .iter()
            .all(|k| k.class_id != d.class_id || iou(&k.bbox, &d.bbox) <= iou_threshold)
        {
            keep.push(d);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_id: usize, score: f32, x: f32) -> Detection {
        Detection {
            class_id,
            score,
            bbox: BBox {
                x,
                y: 0.0,
                w: 10.0,
                h: 10.0,
            },
        }
    }

    #[test]
    fn nms_is_per_class_and_keeps_the_best() {
        let out = nms(
            vec![
                det(0, 0.5, 1.0),
                det(0, 0.9, 0.0),
                det(1, 0.8, 0.0),
                det(0, 0.7, 50.0),
            ],
            0.45,
            100,
        );
        let got: Vec<(usize, f32)> = out.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, vec![(0, 0.9), (1, 0.8), (0, 0.7)]);
    }

    #[test]
    fn nan_scores_never_panic_or_survive_candidates() {
        let place = Placement {
            image_w: 100,
            image_h: 100,
            offset_x: 0.0,
            offset_y: 0.0,
            scaled_w: 100.0,
            scaled_h: 100.0,
        };
        let rows = [
            50.0,
            50.0,
            10.0,
            10.0,
            f32::NAN,
            1.0,
            50.0,
            50.0,
            10.0,
            10.0,
            0.9,
            0.9,
        ];
        let c = candidates(&rows, 6, 0.25, &place);
        assert_eq!(c.len(), 1);
        let out = nms(vec![det(0, f32::NAN, 0.0), det(0, 0.5, 0.0)], 0.45, 10);
        assert_eq!(out.len(), 2.min(out.len()));
    }

    #[test]
    fn iou_of_disjoint_and_identical() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &BBox { x: 20.0, ..a }), 0.0);
    }
}
