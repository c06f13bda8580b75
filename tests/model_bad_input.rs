//! Malformed cfgs and weights: a clear message naming file/line/key (or byte counts), exit ≠ 0, no panic.

mod common;

use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    common::repo_root().join("tests/fixtures/cfg").join(name)
}

/// Runs `kestrel info` with `args`; asserts failure without panic and returns stderr.
fn info_fails(args: &[&str]) -> String {
    let out = common::kestrel()
        .arg("info")
        .args(args)
        .output()
        .expect("kestrel runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert!(!stderr.contains("panicked"), "panic for {args:?}: {stderr}");
    stderr
}

fn cfg_error(name: &str, needles: &[&str]) {
    let path = fixture(name);
    let stderr = info_fails(&["--cfg", path.to_str().unwrap()]);
    for n in needles {
        assert!(stderr.contains(n), "{name}: `{n}` not in: {stderr}");
    }
}

#[test]
fn unknown_block() {
    cfg_error(
        "unknown_block.cfg",
        &["unknown_block.cfg:14", "[transformer]"],
    );
}

#[test]
fn missing_filters() {
    cfg_error(
        "missing_filters.cfg",
        &["missing_filters.cfg:6", "`filters`", "convolutional"],
    );
}

#[test]
fn route_to_future_layer() {
    cfg_error(
        "future_route.cfg",
        &["future_route.cfg:13", "`layers`", "layer 3"],
    );
}

#[test]
fn shortcut_channel_mismatch() {
    cfg_error(
        "shortcut_mismatch.cfg",
        &["shortcut_mismatch.cfg:18", "`from`", "mismatch"],
    );
}

#[test]
fn non_numeric_value() {
    cfg_error("non_numeric.cfg", &["non_numeric.cfg:8", "`size`", "three"]);
}

fn weights_error(bytes: &[u8], dir: &Path, needles: &[String]) {
    let path = dir.join("bad.weights");
    std::fs::write(&path, bytes).unwrap();
    let cfg = common::asset("yolov3-tiny.cfg");
    let stderr = info_fails(&[
        "--cfg",
        cfg.to_str().unwrap(),
        "--weights",
        path.to_str().unwrap(),
    ]);
    assert!(stderr.contains("bad.weights"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n.as_str()), "`{n}` not in: {stderr}");
    }
}

#[test]
fn truncated_and_oversized_weights() {
    let real = std::fs::read(common::asset("yolov3-tiny.weights")).unwrap();
    let n = real.len();
    let dir = tempfile::tempdir().unwrap();
    // Cut inside the last conv (layer 22, 255 filters 1x1 over 256 channels).
    weights_error(
        &real[..n - 1000],
        dir.path(),
        &[
            "truncated".into(),
            "layer 22".into(),
            format!("expected {n} bytes"),
            format!("has {}", n - 1000),
        ],
    );
    // Cut inside the first conv.
    weights_error(
        &real[..100],
        dir.path(),
        &["layer 0".into(), "has 100".into()],
    );
    let mut big = real.clone();
    big.extend_from_slice(&[0u8; 8]);
    weights_error(
        &big,
        dir.path(),
        &[
            "oversized".into(),
            format!("expected {n} bytes"),
            format!("has {}", n + 8),
        ],
    );
    weights_error(&real[..7], dir.path(), &["header".into()]);
    // Library API gives the same typed error.
    let cfg = kestrel::model::Cfg::parse_file(&common::asset("yolov3-tiny.cfg")).unwrap();
    let p = dir.path().join("bad.weights");
    std::fs::write(&p, &real[..n - 4]).unwrap();
    let e = kestrel::model::DarknetWeights::read(&p, &cfg).unwrap_err();
    assert!(
        matches!(
            e,
            kestrel::model::ModelError::WeightsTruncated { layer: 22, .. }
        ),
        "{e}"
    );
}

#[test]
fn missing_cfg_file_names_it() {
    let stderr = info_fails(&["--cfg", "/nonexistent/x.cfg"]);
    assert!(stderr.contains("/nonexistent/x.cfg"), "{stderr}");
}
