//! `kestrel eval` on VisDrone-VID layouts (auto-detected) equals the official VisDrone2018-VID
//! toolkit, run unchanged under GNU Octave by scripts/make-visdrone-vid-goldens.sh on the committed
//! fixtures: the seven numbers and every class's values.

mod common;
use common::{assert_equals_goldens, eval_detections_json, repo_root};
use std::collections::BTreeMap;

/// `set -> (class or "all" -> seven numbers)` from vid_goldens.txt.
fn goldens() -> BTreeMap<String, BTreeMap<String, Vec<f64>>> {
    let path = repo_root().join("tests/fixtures/visdrone/vid_goldens.txt");
    let text = std::fs::read_to_string(&path).expect("vid_goldens.txt");
    let mut out: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut it = l.split_whitespace();
        let set = it.next().expect("set").to_string();
        let class = it.next().expect("class").to_string();
        let v: Vec<f64> = it.map(|v| v.parse().expect("number")).collect();
        assert_eq!(v.len(), 7, "{l}");
        out.entry(set).or_default().insert(class, v);
    }
    out
}

#[test]
fn vid_protocol_equals_official_vid_toolkit_goldens_per_class_too() {
    let sets = goldens();
    assert_eq!(sets.len(), 2, "expected sets V1, V2 in vid_goldens.txt");
    let tmp = tempfile::tempdir().unwrap();
    for (name, want) in sets {
        let dir = repo_root()
            .join("tests/fixtures/visdrone/vid_sets")
            .join(&name);
        let v = eval_detections_json(&dir, &[], &tmp.path().join(format!("{name}.json")));
        assert_eq!(v["protocol"], "visdrone-vid");
        assert_equals_goldens(&format!("set {name}"), &v, &want["all"]);
        let per_class = v["per_class"].as_array().unwrap();
        assert_eq!(per_class.len(), want.len() - 1, "set {name}: classes");
        for c in per_class {
            let id = c["id"].as_i64().unwrap().to_string();
            let w = want
                .get(&id)
                .unwrap_or_else(|| panic!("set {name}: class {id} not in goldens"));
            assert_equals_goldens(&format!("set {name} class {id}"), c, w);
        }
    }
}
