//! `kestrel eval` against Python peers built on pycocotools 2.0.11: `--protocol visdrone` equals
//! the toolkit rebuilt from pycocotools' per-image matches (tests/peers/visdrone_ref.py), and
//! `--protocol coco` equals pycocotools itself (tests/peers/coco_ref.py), on the committed
//! fixtures and on a freshly generated random set every run.

mod common;
use common::{eval_detections_json, path_str, python, repo_root, run_python, EVAL_KEYS};
use std::path::Path;

fn kestrel_json(set: &Path, protocol: &str, out: &Path) -> serde_json::Value {
    eval_detections_json(set, &["--protocol", protocol], out)
}

fn compare(set: &Path, tmp: &Path) {
    let set_s = path_str(set);
    let peer: serde_json::Value =
        serde_json::from_str(&run_python("visdrone_ref.py", &[set_s])).unwrap();
    let ours = kestrel_json(set, "visdrone", &tmp.join("v.json"));
    for k in EVAL_KEYS {
        let (a, b) = (ours[k].as_f64().unwrap(), peer[k].as_f64().unwrap());
        assert!(
            (a - b).abs() < 1e-9,
            "{set_s} visdrone {k}: kestrel {a} vs peer {b}"
        );
    }
    let peer: serde_json::Value =
        serde_json::from_str(&run_python("coco_ref.py", &[set_s])).unwrap();
    let ours = kestrel_json(set, "coco", &tmp.join("c.json"));
    for k in EVAL_KEYS.iter().chain(&["APs", "APm", "APl"]) {
        let (a, b) = (ours[k].as_f64().unwrap(), peer[k].as_f64().unwrap());
        assert!(
            (a - b).abs() < 1e-9,
            "{set_s} coco {k}: kestrel {a} vs pycocotools {b}"
        );
    }
}

#[test]
fn committed_fixtures_match_pycocotools_peers() {
    let tmp = tempfile::tempdir().unwrap();
    for s in ["A", "B", "C", "D", "E"] {
        compare(
            &repo_root().join("tests/fixtures/visdrone/sets").join(s),
            tmp.path(),
        );
    }
}

#[test]
fn fresh_random_fixtures_match_pycocotools_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let gen = repo_root().join("tests/fixtures/visdrone/make_fixtures.py");
    let st = std::process::Command::new(python())
        .arg(&gen)
        .arg(tmp.path())
        .args(["--seed", &seed, "--sets", "C,D"])
        .status()
        .unwrap();
    assert!(st.success(), "fixture generator failed");
    eprintln!("fixture seed {seed}");
    for s in ["C", "D"] {
        compare(&tmp.path().join(s), tmp.path());
    }
}

/// VID layout: `--protocol visdrone` equals an independent numpy re-implementation of the VID
/// toolkit (tests/peers/visdrone_vid_ref.py), overall and per class, and `--protocol coco` equals
/// pycocotools on the evaluated frames (tests/peers/visdrone_vid_coco_ref.py), on the committed
/// sets and on a fresh random set.
#[test]
fn vid_sets_match_python_vid_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let gen = repo_root().join("tests/fixtures/visdrone/make_vid_fixtures.py");
    let st = std::process::Command::new(python())
        .arg(&gen)
        .arg(tmp.path())
        .args(["--seed", &seed, "--sets", "V2"])
        .status()
        .unwrap();
    assert!(st.success(), "VID fixture generator failed");
    eprintln!("VID fixture seed {seed}");
    let committed = repo_root().join("tests/fixtures/visdrone/vid_sets");
    for set in [
        committed.join("V1"),
        committed.join("V2"),
        tmp.path().join("V2"),
    ] {
        let set_s = path_str(&set);
        let peer: serde_json::Value =
            serde_json::from_str(&run_python("visdrone_vid_ref.py", &[set_s])).unwrap();
        let ours = kestrel_json(&set, "visdrone", &tmp.path().join("vid.json"));
        for k in EVAL_KEYS {
            let (a, b) = (ours[k].as_f64().unwrap(), peer[k].as_f64().unwrap());
            assert!((a - b).abs() < 1e-9, "{set_s} {k}: kestrel {a} vs peer {b}");
        }
        let peer_coco: serde_json::Value =
            serde_json::from_str(&run_python("visdrone_vid_coco_ref.py", &[set_s])).unwrap();
        let ours_coco = kestrel_json(&set, "coco", &tmp.path().join("vid_coco.json"));
        for k in EVAL_KEYS.iter().chain(&["APs", "APm", "APl"]) {
            let (a, b) = (
                ours_coco[k].as_f64().unwrap(),
                peer_coco[k].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() < 1e-9,
                "{set_s} coco {k}: kestrel {a} vs pycocotools {b}"
            );
        }
        let classes = ours["per_class"].as_array().unwrap();
        assert_eq!(classes.len(), peer["per_class"].as_object().unwrap().len());
        for c in classes {
            let p = &peer["per_class"][c["id"].as_i64().unwrap().to_string()];
            assert_eq!(c["images"], p["weight"], "{set_s}: class weight");
            for k in EVAL_KEYS {
                let (a, b) = (c[k].as_f64().unwrap(), p[k].as_f64().unwrap());
                assert!(
                    (a - b).abs() < 1e-9,
                    "{set_s} class {} {k}: {a} vs {b}",
                    c["id"]
                );
            }
        }
    }
}
