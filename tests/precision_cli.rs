//! `--precision` and Kestrel model files through the commands users run: `detect`, `info`, `run`,
//! `bench`. Real yolov3-tiny weights on the real photos.

mod common;
use common::*;
use kestrel::quant::accuracy::{pseudo_ap50, Scored};
use std::path::{Path, PathBuf};

fn photos() -> [PathBuf; 2] {
    [asset("bus.jpg"), asset("zidane.jpg")]
}

/// `kestrel detect` with extra arguments on both photos: detections per image.
fn detect(extra: &[&str]) -> Vec<Vec<Scored>> {
    let out = kestrel()
        .arg("detect")
        .args(extra)
        .args(["--names", path_str(&asset("coco.names"))])
        .args(photos().iter().map(|p| path_str(p).to_string()))
        .output()
        .expect("run kestrel");
    assert!(
        out.status.success(),
        "detect {extra:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let dets: Vec<RefDet> = serde_json::from_value(v["detections"].clone()).unwrap();
            dets.iter()
                .map(|d| Scored {
                    class: d.class_id,
                    score: d.score,
                    bbox: [
                        d.bbox[0],
                        d.bbox[1],
                        d.bbox[0] + d.bbox[2],
                        d.bbox[1] + d.bbox[3],
                    ],
                })
                .collect()
        })
        .collect()
}

fn darknet_args() -> Vec<String> {
    vec![
        "--cfg".into(),
        path_str(&asset("yolov3-tiny.cfg")).into(),
        "--weights".into(),
        path_str(&asset("yolov3-tiny.weights")).into(),
    ]
}

fn quantize(dtype: &str, out: &Path) {
    let status = kestrel()
        .arg("quantize")
        .args(darknet_args())
        .args(["--dtype", dtype, "--out", path_str(out)])
        .status()
        .unwrap();
    assert!(status.success(), "quantize {dtype}");
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn q8_and_f16_at_load_agree_with_f32_in_detect() {
    let base = darknet_args();
    let truth = detect(&refs(&base));
    assert!(truth.iter().all(|t| !t.is_empty()));
    for p in ["q8", "f16"] {
        let mut a = base.clone();
        a.extend(["--precision".into(), p.into(), "--all-reduced".into()]);
        let ap = pseudo_ap50(&truth, &detect(&refs(&a)));
        eprintln!("{p}: pseudo-AP50 against f32 = {ap:.3}");
        assert!(ap >= 0.95, "{p}: pseudo-AP50 {ap:.3}");
    }
}

#[test]
fn a_model_file_needs_no_cfg_and_equals_quantizing_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tiny-q8.gguf");
    quantize("q8_0", &file);
    let from_file = detect(&["--weights", path_str(&file), "--all-reduced"]);
    let mut a = darknet_args();
    a.extend(["--precision".into(), "q8".into(), "--all-reduced".into()]);
    let at_load = detect(&refs(&a));
    assert_eq!(
        from_file, at_load,
        "same q8 kernels must give the same boxes"
    );
    // The same file asked for f32 runs the dequantized kernels: still the f32 model's boxes.
    let truth = detect(&refs(&darknet_args()));
    let f32_of_file = detect(&["--weights", path_str(&file), "--precision", "f32"]);
    assert!(pseudo_ap50(&truth, &f32_of_file) >= 0.95);
}

/// `--int8-chain`: the plan of `info` times each chainable conv from int8 input (its "chain ms"
/// column) only with the flag, and `detect` with chained int8 — the second photo run from the
/// scales the first calibrated — finds what f32 finds.
#[test]
fn int8_chain_flag_plans_from_int8_inputs_and_detects_like_f32() {
    let chain_times = |extra: &[&str]| {
        let out = kestrel()
            .arg("info")
            .args(darknet_args())
            .args(["--precision", "q8"])
            .args(extra)
            .output()
            .unwrap();
        assert_success(&out);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .skip_while(|l| !l.trim_start().starts_with("layer"))
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() == 9 && f[7].parse::<f64>().is_ok()
            })
            .count()
    };
    let (with, without) = (chain_times(&["--int8-chain"]), chain_times(&[]));
    eprintln!("convs timed from int8 input: {with} with --int8-chain, {without} without");
    assert_eq!(without, 0);
    if kestrel::quant::cpu_int8_direct_available() {
        // yolov3-tiny: its 1×1 → 3×3 head pairs and the convs after them.
        assert!(with >= 2, "{with} convs timed from int8 input");
    } else {
        assert_eq!(with, 0, "no direct int8 kernel here: nothing is chained");
    }
    let base = darknet_args();
    let truth = detect(&refs(&base));
    let mut a = base.clone();
    a.extend(["--precision", "q8", "--all-reduced", "--int8-chain"].map(String::from));
    let ap = pseudo_ap50(&truth, &detect(&refs(&a)));
    eprintln!("q8 chained: pseudo-AP50 against f32 = {ap:.3}");
    assert!(ap >= 0.95, "q8 chained: pseudo-AP50 {ap:.3}");
}

#[test]
fn info_shows_the_plan_of_a_model_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tiny-q8.gguf");
    quantize("q8_0", &file);
    let out = kestrel()
        .args(["info", "--weights", path_str(&file), "--precision", "q8"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_success(&out);
    assert!(text.contains("5.56 BFLOPs"), "layer table missing: {text}");
    let plan: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("layer"))
        .skip(1)
        .take_while(|l| !l.contains("convs in"))
        .collect();
    let plan_rows = plan
        .iter()
        .filter(|l| matches!(l.split_whitespace().last(), Some("q8_0" | "f32")))
        .count();
    assert_eq!(
        plan_rows, 13,
        "one plan row per conv of yolov3-tiny: {text}"
    );
    assert!(text.contains("of 13 convs in q8_0"), "{text}");
}

#[test]
fn precisions_a_device_cannot_run_are_refused_clearly() {
    let mut a = darknet_args();
    a.extend(["--precision".into(), "bf16".into()]);
    let out = kestrel()
        .arg("detect")
        .args(&a)
        .arg(asset("bus.jpg"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if kestrel::quant::cpu_bf16_available() {
        // This CPU runs bf16 (AMX-BF16 or AVX512-BF16): the bus is still found.
        assert!(out.status.success(), "{err}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("bus"), "bf16 detections: {text}");
    } else {
        assert!(!out.status.success());
        assert!(
            err.contains("AMX-BF16") && err.contains("AVX512-BF16"),
            "{err}"
        );
    }
    let out = kestrel()
        .args(["run", "--source", "synthetic", "--max-frames", "1"])
        .args(["--precision", "int3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model.precision") && err.contains("int3"),
        "{err}"
    );
}

#[test]
fn run_takes_a_model_file_and_a_precision() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tiny-f16.gguf");
    quantize("f16", &file);
    let jsonl = tmp.path().join("out.jsonl");
    let out = kestrel()
        .args(["run", "--source", "synthetic", "--max-frames", "3"])
        .args(["--weights", path_str(&file), "--precision", "f16"])
        .args(["--jsonl", path_str(&jsonl)])
        .output()
        .unwrap();
    assert_success(&out);
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
}

#[test]
fn bench_reports_the_precision_it_ran() {
    let out = kestrel()
        .args(["bench", "--cfg", path_str(&cfg("prune_0.95.cfg"))])
        .args(["--size", "128", "--iters", "1", "--json"])
        .args(["--precision", "q8", "--all-reduced"])
        .output()
        .unwrap();
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench json");
    assert_eq!(v["precision"], "q8_0");
    assert!(v["forward"]["median_ms"].as_f64().unwrap() > 0.0);
}
