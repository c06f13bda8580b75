//! From decoded YOLO heads to `Detection`s: score = objectness × class probability,
//! confidence threshold, per-class greedy NMS, boxes mapped to original-image pixels.

use candle_core::Tensor;

use super::preprocess::Transform;
use super::{BBox, DetectError, Detection};

/// A scored box in network-input pixels (centre form), before mapping back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub class_id: usize,
    pub score: f32,
    pub cx: f32,
    pub cy: f32,
    pub w: f32,
    pub h: f32,
}

/// Rows of one image's decoded heads (`[N, 5+C]` each: cx, cy, w, h, σ(obj), σ(cls)…)
/// turned into candidates above `conf`, one per (box, class) as Darknet does.
pub fn candidates(rows: &[f32], stride: usize, conf: f32) -> Vec<Candidate> {
    let mut out = Vec::new();
    if stride < 6 {
        return out;
    }
    for row in rows.chunks_exact(stride) {
        let obj = row[4];
        // NaN objectness fails this test and the box is dropped.
        if obj.is_nan() || obj <= conf {
            continue;
        }
        for (class_id, &p) in row[5..].iter().enumerate() {
            let score = obj * p;
            if score > conf {
                out.push(Candidate {
                    class_id,
                    score,
                    cx: row[0],
                    cy: row[1],
                    w: row[2],
                    h: row[3],
                });
            }
        }
    }
    out
}

/// Collects the candidates of image `b` from every head's `decoded` tensor `[B, N, 5+C]`.
pub fn candidates_from_heads(
    decoded: &[&Tensor],
    b: usize,
    conf: f32,
) -> Result<Vec<Candidate>, DetectError> {
    let mut out = Vec::new();
    for t in decoded {
        let stride = t.dim(2).map_err(DetectError::tensor("postprocess"))?;
        let rows = t
            .get(b)
            .and_then(|x| x.to_device(&candle_core::Device::Cpu))
            .and_then(|x| x.flatten_all())
            .and_then(|x| x.to_vec1::<f32>())
            .map_err(DetectError::tensor("postprocess"))?;
        out.extend(candidates(&rows, stride, conf));
    }
    Ok(out)
}

/// Intersection over union of two centre-form boxes (continuous coordinates, no "+1").
pub fn iou(a: &Candidate, b: &Candidate) -> f32 {
    let overlap = |c1: f32, s1: f32, c2: f32, s2: f32| {
        let lo = (c1 - s1 / 2.0).max(c2 - s2 / 2.0);
        let hi = (c1 + s1 / 2.0).min(c2 + s2 / 2.0);
        (hi - lo).max(0.0)
    };
    let inter = overlap(a.cx, a.w, b.cx, b.w) * overlap(a.cy, a.h, b.cy, b.h);
    let union = a.w * a.h + b.w * b.h - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Per-class greedy NMS: highest score first, drop same-class boxes overlapping by more than
/// `iou_threshold`. Non-finite candidates are dropped first; output is sorted by score.
pub fn nms(mut cands: Vec<Candidate>, iou_threshold: f32) -> Vec<Candidate> {
    cands.retain(|c| {
        [c.score, c.cx, c.cy, c.w, c.h]
            .iter()
            .all(|v| v.is_finite())
    });
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    // Each candidate is compared with the kept boxes of its own class only: the same decisions
    // as a scan over every kept box, without the cross-class work (an untrained or low-`conf`
    // model spreads thousands of candidates over 80 classes: 0.9 s → milliseconds).
    let mut kept: Vec<Candidate> = Vec::new();
    let mut kept_by_class: std::collections::HashMap<usize, Vec<Candidate>> =
        std::collections::HashMap::new();
    for c in cands {
        let same = kept_by_class.entry(c.class_id).or_default();
        if !same.iter().any(|k| iou(k, &c) > iou_threshold) {
            same.push(c);
            kept.push(c);
        }
    }
    kept
}

/// Maps a candidate to original-image pixels (top-left form), clipped to the image.
pub fn to_detection(c: &Candidate, t: &Transform) -> Detection {
    let (w, h) = (t.orig_w as f32, t.orig_h as f32);
    let x0 = t.x_to_image(c.cx - c.w / 2.0).clamp(0.0, w);
    let x1 = t.x_to_image(c.cx + c.w / 2.0).clamp(0.0, w);
    let y0 = t.y_to_image(c.cy - c.h / 2.0).clamp(0.0, h);
    let y1 = t.y_to_image(c.cy + c.h / 2.0).clamp(0.0, h);
    Detection {
        class_id: c.class_id,
        score: c.score,
        bbox: BBox {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(class_id: usize, score: f32, cx: f32) -> Candidate {
        Candidate {
            class_id,
            score,
            cx,
            cy: 50.0,
            w: 20.0,
            h: 20.0,
        }
    }

    #[test]
    fn score_is_objectness_times_class() {
        let rows = [
            10.0, 10.0, 4.0, 4.0, 0.8, 0.5, 0.1, 1.0, 1.0, 1.0, 1.0, 0.2, 0.9, 0.9,
        ];
        let c = candidates(&rows, 7, 0.25);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].class_id, 0);
        assert!((c[0].score - 0.4).abs() < 1e-6);
    }

    #[test]
    fn nms_is_per_class_and_nan_safe() {
        let mut nan = cand(0, f32::NAN, 10.0);
        nan.w = f32::NAN;
        let kept = nms(
            vec![
                cand(0, 0.5, 11.0),
                cand(0, 0.9, 10.0),
                cand(1, 0.7, 10.0),
                nan,
            ],
            0.45,
        );
        let got: Vec<_> = kept.iter().map(|c| (c.class_id, c.score)).collect();
        assert_eq!(got, vec![(0, 0.9), (1, 0.7)]);
    }

    #[test]
    fn per_class_nms_equals_the_scan_over_every_kept_box() {
        let mut rng = crate::model::random::SplitMix64::new(5);
        let cands: Vec<Candidate> = (0..3000)
            .map(|_| Candidate {
                class_id: (rng.uniform(0.0, 7.0) as usize).min(6),
                score: rng.uniform(0.0, 1.0),
                cx: rng.uniform(0.0, 200.0),
                cy: rng.uniform(0.0, 200.0),
                w: rng.uniform(5.0, 60.0),
                h: rng.uniform(5.0, 60.0),
            })
            .collect();
        let mut sorted = cands.clone();
        sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut want: Vec<Candidate> = Vec::new();
        for c in sorted {
            if !want
                .iter()
                .any(|k| k.class_id == c.class_id && iou(k, &c) > 0.45)
            {
                want.push(c);
            }
        }
        let got = nms(cands, 0.45);
        assert!(want.len() > 100 && want.len() < 3000, "{} kept", want.len());
        assert_eq!(got, want);
    }

    #[test]
    fn nms_keeps_boxes_below_threshold() {
        // IoU of two 20-wide boxes 10 apart = 10/30 = 0.33 < 0.45.
        assert_eq!(
            nms(vec![cand(0, 0.9, 10.0), cand(0, 0.8, 20.0)], 0.45).len(),
            2
        );
        assert_eq!(
            nms(vec![cand(0, 0.9, 10.0), cand(0, 0.8, 20.0)], 0.3).len(),
            1
        );
    }

    #[test]
    fn boxes_map_back_and_clip() {
        let t = Transform {
            scale_x: 0.5,
            scale_y: 0.5,
            pad_x: 0.0,
            pad_y: 8.0,
            orig_w: 100,
            orig_h: 60,
        };
        let mut c = cand(3, 0.6, 5.0);
        c.cy = 30.0;
        // x: -5..15 -> -10..30 -> clipped 0..30; y: 20..40 - 8 -> 24..64 -> clipped 24..60.
        let d = to_detection(&c, &t);
        let want = BBox {
            x: 0.0,
            y: 24.0,
            w: 30.0,
            h: 36.0,
        };
        assert_eq!(d.bbox, want);
    }
}
