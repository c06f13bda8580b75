//! `kestrel detect` on bad images: a clear message naming the file, exit code ≠ 0, no panic,
//! and the good images among them still processed.

mod common;

use common::{assert_success, asset, kestrel, path_str};

fn detect(images: &[&std::path::Path]) -> std::process::Output {
    let mut cmd = kestrel();
    cmd.arg("detect")
        .args(["--cfg", path_str(&asset("yolov3-tiny.cfg"))])
        .args(["--weights", path_str(&asset("yolov3-tiny.weights"))])
        .args(["--names", path_str(&asset("coco.names"))]);
    for i in images {
        cmd.arg(i);
    }
    cmd.output().expect("run kestrel detect")
}

#[test]
fn bad_images_are_named_and_good_ones_still_processed() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("readme.jpg");
    std::fs::write(&text, "this is text, not a JPEG\n").unwrap();
    let bytes = std::fs::read(asset("bus.jpg")).unwrap();
    let cut = dir.path().join("truncated.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let bus = asset("bus.jpg");
    let out = detect(&[&text, &bus, &cut]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit code 0 with bad images");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(
        stderr.contains("readme.jpg"),
        "non-image not named: {stderr}"
    );
    assert!(
        stderr.contains("truncated.jpg"),
        "truncated JPEG not named: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "only bus.jpg should have a result: {stdout}"
    );
    assert!(lines[0].contains("bus.jpg"));
}

#[test]
fn missing_image_and_bad_size_are_clear_errors() {
    let out = detect(&[std::path::Path::new("/nonexistent/x.jpg")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("/nonexistent/x.jpg"), "{stderr}");

    let out = kestrel()
        .args(["detect", "--size", "300"])
        .arg(asset("bus.jpg"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("multiple of 32"), "{stderr}");
}

#[test]
fn save_dir_writes_annotated_copies_and_json_file() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.jsonl");
    let save = dir.path().join("ann");
    let out = kestrel()
        .arg("detect")
        .args(["--json", path_str(&json), "--save-dir", path_str(&save)])
        .arg(asset("zidane.jpg"))
        .env("KESTREL_ASSETS", common::assets_dir())
        .output()
        .unwrap();
    assert_success(&out);
    let line = std::fs::read_to_string(&json).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["width"], 1280);
    assert_eq!(v["detections"][0]["label"], "person");
    let annotated = image::open(save.join("zidane.jpg")).unwrap().to_rgb8();
    let original = image::open(asset("zidane.jpg")).unwrap().to_rgb8();
    assert_eq!(annotated.dimensions(), original.dimensions());
    assert_ne!(annotated, original, "nothing drawn");
}
