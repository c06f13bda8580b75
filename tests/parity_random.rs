//! Parity on random weights (deterministic generator, fixed seed) for the SlimYOLOv3 cfgs at
//! 416, 608 and a non-square size, against OpenCV DNN loading the same `.weights` file: raw head
//! outputs within 1e-4 relative (max |Δ| / max |ref| per head), detections matched.
//!
//! The input is a real photo already at the network size, stored as PNG, so both engines see
//! identical pixels and the comparison is of the networks alone.

mod common;
use common::*;
use kestrel::detect::{load_image, DetectOptions, Detector, ResizeMode};
use kestrel::model::{Cfg, Darknet, DarknetWeights};

const CONF: f32 = 0.5;

fn check(cfg_name: &str, sizes: &[(usize, usize)]) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg_path = cfg(cfg_name);
    let cfg = Cfg::parse_file(&cfg_path).unwrap();
    let weights = DarknetWeights::random(&cfg, 42).unwrap();
    let wpath = tmp.path().join("random.weights");
    weights.write(&wpath).unwrap();
    let photo = load_image(&asset("bus.jpg")).unwrap();
    for &(w, h) in sizes {
        let png = tmp.path().join(format!("input_{w}x{h}.png"));
        let px = kestrel::detect::preprocess::resize_linear(&photo, w as u32, h as u32);
        px.save(&png).unwrap();
        let img = load_image(&png).unwrap();
        let model = Darknet::from_parts(cfg.clone(), &weights, &candle_core::Device::Cpu).unwrap();
        let config = DetectOptions {
            width: w as u32,
            height: h as u32,
            resize: ResizeMode::Stretch,
            conf: CONF,
            nms: 0.45,
        };
        let det = Detector::new(model, config).unwrap();
        let (x, place) = det.preprocess(&img).unwrap();
        let heads = det.infer(&x).unwrap();
        let r = opencv_reference(&cfg_path, &wpath, &png, (w, h), "stretch", CONF, tmp.path());
        let what = format!("{cfg_name} @ {w}x{h}");
        assert_eq!(heads.len(), r.raw.len(), "{what}: number of heads");
        for (k, head) in heads.iter().enumerate() {
            let ours: Vec<f32> = head.raw.flatten_all().unwrap().to_vec1().unwrap();
            assert!(
                ours.iter().all(|v| v.is_finite()),
                "{what}: non-finite outputs"
            );
            let spread = ours.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(spread > 0.5, "{what} head {k}: outputs are trivially small ({spread}): the generator is degenerate");
            let err = relative_error(&ours, &r.raw[k]);
            println!("{what} head {k}: relative error {err:.2e} against OpenCV");
            assert!(err <= 1e-4, "{what} head {k}: relative error {err}");
        }
        let dets = as_ref_dets(det.postprocess(&heads, &place).unwrap());
        assert!(
            !r.detections.is_empty(),
            "{what}: the reference found no boxes; raise the weights' scale"
        );
        assert_detections_match(&dets, &r.detections, CONF, &what);
    }
}

#[test]
fn yolov3_spp3_random_weights_match_opencv() {
    check("yolov3-spp3.cfg", &[(416, 416), (608, 608), (416, 288)]);
}

#[test]
fn prune_0_95_random_weights_match_opencv() {
    check("prune_0.95.cfg", &[(416, 416), (608, 608), (320, 480)]);
}

#[test]
fn prune_0_5_0_5_0_7_random_weights_match_opencv() {
    check(
        "prune_0.5_0.5_0.7.cfg",
        &[(416, 416), (608, 608), (416, 288)],
    );
}
