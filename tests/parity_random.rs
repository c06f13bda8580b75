//! SlimYOLOv3 cfgs with deterministic random weights (written as a real .weights file) against
//! OpenCV DNN 4.x: raw head outputs and detections, at 416², 608² and non-square 416×288.
//!
//! Both engines get the same input: the blob OpenCV built (our own preprocessing is checked
//! bit-exact against it in parity_real.rs), so the comparison isolates the network.
//! Raw-head tolerance, per head: max|ours − ref| / max|ref| ≤ 1e-4.

mod common;
mod parity;

use candle_core::{Device, Tensor};
use common::{asset, cfg};
use kestrel::detect::postprocess::{candidates_from_heads, nms, to_detection};
use kestrel::detect::{load_image, preprocess::preprocess, ResizeMode};
use kestrel::model::{Cfg, Darknet, DarknetWeights};
use parity::{assert_dets_match, dets_from_json, opencv_ref, read_f32, Det};

const SEED: u64 = 20240601;
const SIZES: [(u32, u32); 3] = [(416, 416), (608, 608), (416, 288)];
/// Random heads put many boxes near 0.25; a higher threshold keeps the lists short and away
/// from ties at the threshold.
const CONF: f32 = 0.95;

fn check_cfg(name: &str) {
    let cfg_path = cfg(name);
    let parsed = Cfg::parse_file(&cfg_path).unwrap();
    let weights = DarknetWeights::random(&parsed, SEED).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let weights_path = dir.path().join("random.weights");
    weights.write(&weights_path).unwrap();
    let model = Darknet::from_parts(parsed, &weights, &Device::Cpu).unwrap();
    let image = asset("bus.jpg");
    let rgb = load_image(&image).unwrap();
    for (w, h) in SIZES {
        let what = format!("{name} {w}x{h}");
        let out = dir.path().join(format!("{w}x{h}"));
        let reference = opencv_ref(
            &cfg_path,
            &weights_path,
            &image,
            (w, h),
            "letterbox",
            CONF,
            &out,
        );
        let blob = read_f32(&out.join("blob.f32"));
        let input = Tensor::from_vec(blob, (1, 3, h as usize, w as usize), &Device::Cpu).unwrap();
        let heads = model.forward(&input).unwrap();
        let ref_heads = reference["heads"].as_array().unwrap();
        assert_eq!(heads.len(), ref_heads.len(), "{what}: number of heads");
        for (k, (ours, r)) in heads.iter().zip(ref_heads).enumerate() {
            let shape: Vec<usize> = r["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(ours.raw.dims(), &shape[..], "{what} head {k}: shape");
            let ours: Vec<f32> = ours.raw.flatten_all().unwrap().to_vec1().unwrap();
            let theirs = read_f32(std::path::Path::new(r["file"].as_str().unwrap()));
            let max_ref = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let max_diff = ours
                .iter()
                .zip(&theirs)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                max_ref.is_finite() && max_ref > 0.0,
                "{what} head {k}: max|ref| = {max_ref}"
            );
            let rel = max_diff / max_ref;
            eprintln!(
                "{what} head {k}: max|ref| {max_ref:.3}, max|diff| {max_diff:.3e}, rel {rel:.2e}"
            );
            assert!(
                rel <= 1e-4,
                "{what} head {k}: relative difference {rel:.3e} > 1e-4"
            );
        }
        let (_, transform) = preprocess(&rgb, w, h, ResizeMode::Letterbox, &Device::Cpu).unwrap();
        let decoded: Vec<&Tensor> = heads.iter().map(|o| &o.decoded).collect();
        let ours: Vec<Det> = nms(candidates_from_heads(&decoded, 0, CONF).unwrap(), 0.45)
            .iter()
            .map(|c| {
                let d = to_detection(c, &transform);
                Det {
                    class_id: d.class_id as u64,
                    score: d.score as f64,
                    bbox: [d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h].map(f64::from),
                }
            })
            .collect();
        // Random heads give hundreds of boxes, among them slivers a pixel or two high (clipped
        // at the image edge or from a very negative t_h). Their IoU with a neighbour moves by
        // several percent for a 1e-5 change of the head, so which of two overlapping slivers
        // NMS keeps is not a property of the engine; compare boxes at least 8 px each side.
        let visible = |d: &Det| d.bbox[2] >= 8.0 && d.bbox[3] >= 8.0;
        let ours: Vec<Det> = ours.into_iter().filter(visible).collect();
        let ref_dets: Vec<Det> = dets_from_json(&reference)
            .into_iter()
            .filter(visible)
            .collect();
        eprintln!(
            "{what}: {} reference detections, {} ours",
            ref_dets.len(),
            ours.len()
        );
        assert_dets_match(&what, &ref_dets, &ours);
    }
}

#[test]
fn prune_0_95_matches_opencv() {
    check_cfg("prune_0.95.cfg");
}

#[test]
fn prune_0_5_0_5_0_7_matches_opencv() {
    check_cfg("prune_0.5_0.5_0.7.cfg");
}

#[test]
fn yolov3_spp3_matches_opencv() {
    check_cfg("yolov3-spp3.cfg");
}
