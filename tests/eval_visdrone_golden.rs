//! `kestrel eval --protocol visdrone` equals the official VisDrone2018-DET toolkit, run unchanged
//! under GNU Octave by scripts/make-visdrone-goldens.sh on the committed fixtures.

mod common;
use common::{assert_equals_goldens, eval_detections_json, repo_root};

fn goldens() -> Vec<(String, Vec<f64>)> {
    let path = repo_root().join("tests/fixtures/visdrone/goldens.txt");
    let text = std::fs::read_to_string(&path).expect("goldens.txt");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().expect("set name").to_string();
            (name, it.map(|v| v.parse().expect("number")).collect())
        })
        .collect()
}

#[test]
fn visdrone_protocol_equals_official_toolkit_goldens() {
    let sets = goldens();
    assert_eq!(sets.len(), 5, "expected sets A..E in goldens.txt");
    let tmp = tempfile::tempdir().unwrap();
    for (name, want) in sets {
        let dir = repo_root().join("tests/fixtures/visdrone/sets").join(&name);
        let v = eval_detections_json(&dir, &[], &tmp.path().join(format!("{name}.json")));
        assert_equals_goldens(&format!("set {name}"), &v, &want);
    }
}

/// Per-class goldens: the toolkit's calcAccuracy run on one class's GT (detections unchanged).
#[test]
fn per_class_values_equal_official_toolkit_goldens() {
    let path = repo_root().join("tests/fixtures/visdrone/goldens_per_class.txt");
    let text = std::fs::read_to_string(&path).expect("goldens_per_class.txt");
    let mut want: std::collections::BTreeMap<String, Vec<(i64, Vec<f64>)>> = Default::default();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut it = l.split_whitespace();
        let set = it.next().expect("set").to_string();
        let class: i64 = it.next().expect("class").parse().expect("class id");
        let v: Vec<f64> = it.map(|v| v.parse().expect("number")).collect();
        assert_eq!(v.len(), 7, "{l}");
        want.entry(set).or_default().push((class, v));
    }
    assert_eq!(want.len(), 5, "expected sets A..E in goldens_per_class.txt");
    let tmp = tempfile::tempdir().unwrap();
    for (name, classes) in want {
        let dir = repo_root().join("tests/fixtures/visdrone/sets").join(&name);
        let v = eval_detections_json(&dir, &[], &tmp.path().join(format!("{name}.json")));
        let ours = v["per_class"].as_array().unwrap();
        assert_eq!(ours.len(), classes.len(), "set {name}: number of classes");
        for (c, w) in classes {
            let got = ours
                .iter()
                .find(|o| o["id"].as_i64() == Some(c))
                .unwrap_or_else(|| panic!("set {name}: class {c} missing"));
            assert_equals_goldens(&format!("set {name} class {c}"), got, &w);
        }
    }
}
