//! Shared helpers for the end-to-end tests: where the real assets, the Python peers and the
//! `kestrel` binary are. A missing peer or asset fails the test with the command that fixes it;
//! nothing is skipped silently.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Folder with the real assets (scripts/fetch-assets.sh); `KESTREL_ASSETS` overrides.
pub fn assets_dir() -> PathBuf {
    let dir = std::env::var_os("KESTREL_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("assets"));
    assert!(
        dir.join("yolov3-tiny.weights").is_file(),
        "real assets missing in {}: run scripts/fetch-assets.sh (or scripts/setup.sh)",
        dir.display()
    );
    dir
}

pub fn asset(name: &str) -> PathBuf {
    assets_dir().join(name)
}

/// A cfg file committed under models/cfg/.
pub fn cfg(name: &str) -> PathBuf {
    repo_root().join("models/cfg").join(name)
}

/// The Python interpreter that has the peers (OpenCV, pycocotools, pymavlink).
pub fn python() -> PathBuf {
    let py = std::env::var_os("KESTREL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        py.is_file(),
        "Python peers missing ({}): run scripts/setup.sh",
        py.display()
    );
    py
}

/// Runs a Python script from tests/peers/ with arguments; panics with its stderr on failure.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let path = repo_root().join("tests/peers").join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The real yolov3-tiny (COCO names) on the CPU at `size`, as `kestrel run` would load it.
pub fn tiny_model_args(size: usize) -> kestrel::pipeline::model::ModelArgs {
    kestrel::pipeline::model::ModelArgs {
        cfg: Some(asset("yolov3-tiny.cfg")),
        weights: Some(asset("yolov3-tiny.weights")),
        names: Some(asset("coco.names")),
        size: Some(size),
        conf: 0.25,
        nms: 0.45,
        device: "cpu".into(),
        precision: None,
        int8_chain: false,
    }
}

/// The seven headline numbers of `kestrel eval --json`, in the order the goldens list them.
pub const EVAL_KEYS: [&str; 7] = ["AP", "AP50", "AP75", "AR1", "AR10", "AR100", "AR500"];

/// `kestrel eval --dataset SET --detections SET/results EXTRA… --json OUT`, parsed.
pub fn eval_detections_json(set: &Path, extra: &[&str], out: &Path) -> serde_json::Value {
    let o = kestrel()
        .args(["eval", "--dataset", path_str(set), "--detections"])
        .arg(set.join("results"))
        .args(extra)
        .args(["--json", path_str(out)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

/// Kestrel's seven numbers (fractions) equal the toolkit's goldens (percent, printed with 10
/// decimals) to 1e-9.
pub fn assert_equals_goldens(what: &str, got: &serde_json::Value, want: &[f64]) {
    for (key, want) in EVAL_KEYS.iter().zip(want) {
        let got = 100.0 * got[key].as_f64().expect(key);
        assert!(
            (got - want).abs() < 1e-9,
            "{what} {key}: kestrel {got:.10} vs toolkit {want:.10}"
        );
    }
}

/// The `kestrel` binary built for this test run.
pub fn kestrel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kestrel"))
}

/// Fails the test with the command's stderr unless it exited with success.
#[track_caller]
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// A detection as the OpenCV reference and `kestrel detect` print it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RefDet {
    pub class_id: usize,
    pub score: f32,
    pub bbox: [f32; 4],
}

/// Output of tests/peers/opencv_ref.py.
#[derive(Debug, serde::Deserialize)]
pub struct OpencvRef {
    pub heads: Vec<[usize; 3]>,
    pub detections: Vec<RefDet>,
    #[serde(skip)]
    pub raw: Vec<Vec<f32>>,
}

/// Runs OpenCV DNN on cfg/weights/image at width×height and returns its heads and detections.
pub fn opencv_reference(
    cfg: &Path,
    weights: &Path,
    image: &Path,
    wh: (usize, usize),
    mode: &str,
    conf: f32,
    outdir: &Path,
) -> OpencvRef {
    let out = run_python(
        "opencv_ref.py",
        &[
            path_str(cfg),
            path_str(weights),
            path_str(image),
            &wh.0.to_string(),
            &wh.1.to_string(),
            mode,
            &conf.to_string(),
            "0.45",
            path_str(outdir),
        ],
    );
    let mut r: OpencvRef = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("bad opencv_ref output ({e}): {out}"));
    r.raw = (0..r.heads.len())
        .map(|k| {
            let bytes = std::fs::read(outdir.join(format!("head_{k}.f32"))).expect("head file");
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect();
    r
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let iy = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

/// Issue 2's matching rule: every reference box has a Kestrel box of the same class with
/// IoU ≥ 0.98 and |Δscore| ≤ 0.01, and Kestrel has no extra box.
/// Boxes scoring within the score tolerance of the threshold `conf` may be present in one list only
/// (their scores may legitimately fall on either side of it).
pub fn assert_detections_match(ours: &[RefDet], reference: &[RefDet], conf: f32, what: &str) {
    let borderline = |d: &RefDet| d.score <= conf + 0.01;
    let mut used = vec![false; ours.len()];
    for r in reference {
        let best = ours
            .iter()
            .enumerate()
            .filter(|(i, o)| {
                !used[*i] && o.class_id == r.class_id && (o.score - r.score).abs() <= 0.01
            })
            .map(|(i, o)| (i, iou(&o.bbox, &r.bbox)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, v)) if v >= 0.98 => used[i] = true,
            _ if borderline(r) => {}
            _ => panic!("{what}: reference box {r:?} has no match (IoU ≥ 0.98, |Δscore| ≤ 0.01) among {ours:?}"),
        }
    }
    let extra: Vec<&RefDet> = ours
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(o, _)| o)
        .collect();
    assert!(
        extra.is_empty(),
        "{what}: Kestrel has boxes OpenCV does not: {extra:?}"
    );
}

/// max |a − b| / max |b|: relative error of a whole head output.
pub fn relative_error(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "head sizes differ");
    let scale = reference
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    ours.iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// Kestrel's detections in the reference's shape, for [`assert_detections_match`].
pub fn as_ref_dets(dets: Vec<kestrel::detect::Detection>) -> Vec<RefDet> {
    dets.into_iter()
        .map(|d| RefDet {
            class_id: d.class_id,
            score: d.score,
            bbox: [d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h],
        })
        .collect()
}
