//! Shared by the parity tests: running the OpenCV DNN reference and matching detections.
#![allow(dead_code)]

use std::path::Path;

use crate::common::{path_str, run_python};

/// One detection as both engines print it: class, score, [x, y, w, h] in image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Det {
    pub class_id: u64,
    pub score: f64,
    pub bbox: [f64; 4],
}

pub fn dets_from_json(v: &serde_json::Value) -> Vec<Det> {
    v["detections"]
        .as_array()
        .expect("detections array")
        .iter()
        .map(|d| {
            let b: Vec<f64> = d["bbox"]
                .as_array()
                .expect("bbox")
                .iter()
                .map(|x| x.as_f64().expect("bbox number"))
                .collect();
            Det {
                class_id: d["class_id"].as_u64().expect("class_id"),
                score: d["score"].as_f64().expect("score"),
                bbox: [b[0], b[1], b[2], b[3]],
            }
        })
        .collect()
}

pub fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let ix = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let iy = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    let inter = ix.max(0.0) * iy.max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 {
        inter / union
    } else {
        // Both boxes clipped to zero area (random weights put some wholly outside the image):
        // the same box when every coordinate agrees to a tenth of a pixel.
        let same = a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 0.1);
        if same {
            1.0
        } else {
            0.0
        }
    }
}

/// Every reference box matched by a distinct box of ours (same class, IoU ≥ 0.98,
/// |Δscore| ≤ 0.01), and no box of ours left over. Panics with both lists otherwise.
pub fn assert_dets_match(what: &str, reference: &[Det], ours: &[Det]) {
    let mut used = vec![false; ours.len()];
    for r in reference {
        let hit = ours.iter().enumerate().position(|(i, o)| {
            !used[i]
                && o.class_id == r.class_id
                && iou(&o.bbox, &r.bbox) >= 0.98
                && (o.score - r.score).abs() <= 0.01
        });
        match hit {
            Some(i) => used[i] = true,
            None => panic!(
                "{what}: reference box {r:?} not matched; {} reference boxes, {} ours; ours nearest: {:?}",
                reference.len(),
                ours.len(),
                ours.iter().filter(|o| o.class_id == r.class_id).max_by(|a, b| iou(&a.bbox, &r.bbox).total_cmp(&iou(&b.bbox, &r.bbox)))
            ),
        }
    }
    assert_eq!(
        reference.len(),
        ours.len(),
        "{what}: extra boxes of ours\nreference: {reference:#?}\nours: {ours:#?}"
    );
}

/// Runs tests/peers/opencv_ref.py; returns its JSON (raw heads + blob written into `out_dir`).
#[allow(clippy::too_many_arguments)]
pub fn opencv_ref(
    cfg: &Path,
    weights: &Path,
    image: &Path,
    (w, h): (u32, u32),
    resize: &str,
    conf: f32,
    out_dir: &Path,
) -> serde_json::Value {
    let (ws, hs, cs) = (w.to_string(), h.to_string(), conf.to_string());
    let out = run_python(
        "opencv_ref.py",
        &[
            "--cfg",
            path_str(cfg),
            "--weights",
            path_str(weights),
            "--image",
            path_str(image),
            "--width",
            &ws,
            "--height",
            &hs,
            "--resize",
            resize,
            "--conf",
            &cs,
            "--out-dir",
            path_str(out_dir),
        ],
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("opencv_ref.py output: {e}\n{out}"))
}

/// Reads a little-endian float32 file written by the reference.
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
