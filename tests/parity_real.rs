//! Real yolov3-tiny COCO weights on real photos: `kestrel detect` against OpenCV DNN 4.x
//! (tests/peers/opencv_ref.py), both resize modes. Also checks that our preprocessing gives
//! OpenCV's network input bit for bit.

mod common;
mod parity;

use common::{asset, kestrel, path_str};
use kestrel::detect::{load_image, preprocess::preprocess, ResizeMode};
use parity::{assert_dets_match, dets_from_json, opencv_ref, read_f32};

const IMAGES: [&str; 2] = ["bus.jpg", "zidane.jpg"];

/// `kestrel detect` on both images with one resize mode; JSON lines in image order.
fn kestrel_detect(resize: &str) -> Vec<serde_json::Value> {
    let images: Vec<_> = IMAGES.iter().map(|i| asset(i)).collect();
    let mut cmd = kestrel();
    cmd.arg("detect")
        .args(["--cfg", path_str(&asset("yolov3-tiny.cfg"))])
        .args(["--weights", path_str(&asset("yolov3-tiny.weights"))])
        .args(["--names", path_str(&asset("coco.names"))])
        .args(["--size", "416", "--resize", resize]);
    for i in &images {
        cmd.arg(i);
    }
    let out = cmd.output().expect("run kestrel detect");
    assert!(
        out.status.success(),
        "kestrel detect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), IMAGES.len());
    lines
}

fn check_mode(resize: &str) {
    let ours = kestrel_detect(resize);
    for (img, line) in IMAGES.iter().zip(&ours) {
        let dir = tempfile::tempdir().unwrap();
        let reference = opencv_ref(
            &asset("yolov3-tiny.cfg"),
            &asset("yolov3-tiny.weights"),
            &asset(img),
            (416, 416),
            resize,
            0.25,
            dir.path(),
        );
        assert_eq!(line["width"], reference["width"], "{img}");
        assert_eq!(line["height"], reference["height"], "{img}");
        let what = format!("{img} {resize}");
        let ref_dets = dets_from_json(&reference);
        assert!(!ref_dets.is_empty(), "{what}: reference found nothing");
        assert_dets_match(&what, &ref_dets, &dets_from_json(line));
    }
}

/// With the same decoded pixels (a lossless PNG copy, since JPEG decoders differ by a few grey
/// levels), our network input equals OpenCV's bit for bit, in both modes and at a non-square size.
#[test]
fn preprocessing_is_bit_exact_with_opencv() {
    let dir = tempfile::tempdir().unwrap();
    for img in IMAGES {
        let rgb = load_image(&asset(img)).unwrap();
        let png = dir.path().join(format!("{img}.png"));
        rgb.save(&png).unwrap();
        for (resize, mode) in [
            ("letterbox", ResizeMode::Letterbox),
            ("stretch", ResizeMode::Stretch),
        ] {
            for (w, h) in [(416, 416), (416, 288)] {
                let out = dir.path().join(format!("{img}-{resize}-{w}x{h}"));
                opencv_ref(
                    &asset("yolov3-tiny.cfg"),
                    &asset("yolov3-tiny.weights"),
                    &png,
                    (w, h),
                    resize,
                    0.25,
                    &out,
                );
                let (t, _) = preprocess(&rgb, w, h, mode, &candle_core::Device::Cpu).unwrap();
                let blob: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                let ref_blob = read_f32(&out.join("blob.f32"));
                let differing = blob.iter().zip(&ref_blob).filter(|(a, b)| a != b).count();
                assert_eq!(blob.len(), ref_blob.len(), "{img} {resize} {w}x{h}");
                assert_eq!(
                    differing, 0,
                    "{img} {resize} {w}x{h}: {differing} input values differ"
                );
            }
        }
    }
}

#[test]
fn yolov3_tiny_letterbox_matches_opencv() {
    check_mode("letterbox");
}

#[test]
fn yolov3_tiny_stretch_matches_opencv() {
    check_mode("stretch");
}

#[test]
fn bus_has_the_people_opencv_finds() {
    let ours = kestrel_detect("letterbox");
    let people = dets_from_json(&ours[0])
        .iter()
        .filter(|d| d.class_id == 0)
        .count();
    assert!(people >= 3, "bus.jpg: {people} persons found");
}
