//! `kestrel eval --cfg --weights` runs the real yolov3-tiny over a set built from the real photos;
//! `--degrade` with factor 1.0 changes nothing, and a factor < 1 changes the numbers.

mod common;
use common::{asset, kestrel, path_str};

/// A two-image set from the real assets (COCO person = model class 0 = VisDrone pedestrian).
fn real_set(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("annotations")).unwrap();
    for (name, gt) in [
        (
            "bus",
            "50,400,200,500,1,1,0,0\n220,400,130,460,1,1,0,0\n670,380,140,500,1,1,0,0\n",
        ),
        (
            "zidane",
            "750,40,400,670,1,1,0,0\n120,190,1000,530,0,0,0,0\n",
        ),
    ] {
        std::fs::copy(
            asset(&format!("{name}.jpg")),
            dir.join("images").join(format!("{name}.jpg")),
        )
        .unwrap();
        std::fs::write(dir.join("annotations").join(format!("{name}.txt")), gt).unwrap();
    }
    dir.to_path_buf()
}

fn eval_json(set: &std::path::Path, extra: &[&str], out: &std::path::Path) -> String {
    let o = kestrel()
        .args(["eval", "--dataset", path_str(set)])
        .args(["--cfg", path_str(&asset("yolov3-tiny.cfg"))])
        .args(["--weights", path_str(&asset("yolov3-tiny.weights"))])
        .args(["--size", "320", "--conf", "0.0005", "--json", path_str(out)])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn model_path_runs_and_degrade_factor_one_is_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let set = real_set(&tmp.path().join("set"));
    let plain = eval_json(&set, &[], &tmp.path().join("a.json"));
    let one = eval_json(&set, &["--degrade", "16=1.0"], &tmp.path().join("b.json"));
    assert_eq!(plain, one);
    let v: serde_json::Value = serde_json::from_str(&plain).unwrap();
    assert!(v["AP50"].as_f64().unwrap() > 0.0, "{plain}");
}

#[test]
fn degrade_below_one_changes_the_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let set = real_set(&tmp.path().join("set"));
    let plain: serde_json::Value =
        serde_json::from_str(&eval_json(&set, &[], &tmp.path().join("a.json"))).unwrap();
    for (i, level) in ["16=0.25", "32=0.25"].iter().enumerate() {
        let out = tmp.path().join(format!("d{i}.json"));
        let deg: serde_json::Value =
            serde_json::from_str(&eval_json(&set, &["--degrade", level], &out)).unwrap();
        let (a, b) = (plain["AP"].as_f64().unwrap(), deg["AP"].as_f64().unwrap());
        eprintln!("--degrade {level}: AP {a} -> {b}");
        assert_ne!(a, b, "--degrade {level} left AP unchanged");
    }
}

/// A one-sequence VID set from the real bus photo: frames 1 and 3 annotated, frame 2 without GT.
#[test]
fn model_path_runs_on_a_vid_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("vid");
    let seq = set.join("sequences").join("uav0000001_00000_v");
    std::fs::create_dir_all(&seq).unwrap();
    std::fs::create_dir_all(set.join("annotations")).unwrap();
    for f in 1..=3 {
        std::fs::copy(asset("bus.jpg"), seq.join(format!("{f:07}.jpg"))).unwrap();
    }
    let mut gt = String::new();
    for f in [1, 3] {
        for (id, b) in ["50,400,200,500", "220,400,130,460", "670,380,140,500"]
            .iter()
            .enumerate()
        {
            gt.push_str(&format!("{f},{id},{b},1,1,0,0\n"));
        }
    }
    std::fs::write(set.join("annotations/uav0000001_00000_v.txt"), gt).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&eval_json(&set, &[], &tmp.path().join("v.json"))).unwrap();
    assert_eq!(v["protocol"], "visdrone-vid");
    assert!(v["AP50"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["per_class"][0]["gt"], 6);
}
