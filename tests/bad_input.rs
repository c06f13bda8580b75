//! Bad input: every case is a clear message naming the file and line / field, exit code ≠ 0,
//! and never a panic.

mod common;
use common::*;
use std::path::Path;

const NET: &str = "[net]\nwidth=64\nheight=64\nchannels=3\n";
const CONV: &str =
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n";

fn run_fail(args: &[&str]) -> String {
    let out = kestrel().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    err
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn malformed_cfgs_name_file_line_and_key() {
    let d = tempfile::tempdir().unwrap();
    let cases: [(&str, String, &[&str]); 5] = [
        ("unknown_block.cfg", format!("{NET}{CONV}\n[frobnicate]\nsize=2\n"), &["unknown_block.cfg:13", "frobnicate"]),
        ("missing_filters.cfg", format!("{NET}[convolutional]\nsize=3\nactivation=leaky\n"), &["missing_filters.cfg:5", "filters"]),
        ("future_route.cfg", format!("{NET}{CONV}[route]\nlayers=3\n"), &["future_route.cfg:13", "layers", "not an earlier layer"]),
        (
            "shortcut_mismatch.cfg",
            format!("{NET}{CONV}[convolutional]\nfilters=4\nsize=1\nactivation=leaky\n[shortcut]\nfrom=-2\n"),
            &["shortcut_mismatch.cfg:16", "shapes must match"],
        ),
        ("non_numeric.cfg", format!("{NET}[convolutional]\nfilters=eight\nsize=3\n"), &["non_numeric.cfg:6", "filters", "eight"]),
    ];
    for (name, text, needles) in cases {
        let path = write(d.path(), name, &text);
        let err = run_fail(&["info", "--cfg", &path]);
        for n in needles {
            assert!(err.contains(n), "{name}: message lacks '{n}': {err}");
        }
    }
}

#[test]
fn truncated_and_oversized_weights_state_expected_and_actual_bytes() {
    let d = tempfile::tempdir().unwrap();
    let real = std::fs::read(asset("yolov3-tiny.weights")).unwrap();
    let cut = d.path().join("cut.weights");
    std::fs::write(&cut, &real[..real.len() - 1000]).unwrap();
    let big = d.path().join("big.weights");
    let mut more = real.clone();
    more.extend_from_slice(&[0u8; 12]);
    std::fs::write(&big, &more).unwrap();
    let cfg = asset("yolov3-tiny.cfg");
    let bus = asset("bus.jpg");
    let err = run_fail(&[
        "detect",
        "--cfg",
        path_str(&cfg),
        "--weights",
        path_str(&cut),
        path_str(&bus),
    ]);
    assert!(
        err.contains("truncated")
            && err.contains("35434956")
            && err.contains(&(real.len() - 1000).to_string()),
        "{err}"
    );
    assert!(
        err.contains("layer 22 [convolutional] (cfg line 167)"),
        "should name the first layer past the end: {err}"
    );
    let err = run_fail(&[
        "detect",
        "--cfg",
        path_str(&cfg),
        "--weights",
        path_str(&big),
        path_str(&bus),
    ]);
    assert!(
        err.contains("oversized") && err.contains("12 extra"),
        "{err}"
    );
}

#[test]
fn non_image_and_corrupt_jpeg_are_named_and_the_rest_still_runs() {
    let d = tempfile::tempdir().unwrap();
    let text = write(d.path(), "notes.jpg", "this is not an image\n");
    let jpeg = std::fs::read(asset("bus.jpg")).unwrap();
    let corrupt = d.path().join("corrupt.jpg");
    std::fs::write(&corrupt, &jpeg[..jpeg.len() / 3]).unwrap();
    let out = kestrel()
        .args([
            "detect",
            "--cfg",
            path_str(&asset("yolov3-tiny.cfg")),
            "--weights",
            path_str(&asset("yolov3-tiny.weights")),
        ])
        .args([
            text.as_str(),
            path_str(&corrupt),
            path_str(&asset("zidane.jpg")),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("notes.jpg") && err.contains("corrupt.jpg"),
        "{err}"
    );
    assert!(err.contains("2 of 3 images failed"), "{err}");
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 1, "the good image is still processed");
    assert!(lines[0].contains("zidane.jpg"));
}

#[test]
fn bad_sizes_and_devices_are_rejected_clearly() {
    let cfg = asset("yolov3-tiny.cfg");
    let w = asset("yolov3-tiny.weights");
    let err = run_fail(&[
        "detect",
        "--cfg",
        path_str(&cfg),
        "--weights",
        path_str(&w),
        "--size",
        "400",
        path_str(&asset("bus.jpg")),
    ]);
    assert!(err.contains("multiples of 32"), "{err}");
    let err = run_fail(&[
        "detect",
        "--cfg",
        path_str(&cfg),
        "--weights",
        path_str(&w),
        "--device",
        "tpu",
        path_str(&asset("bus.jpg")),
    ]);
    assert!(err.contains("--device tpu"), "{err}");
}
