//! `kestrel eval` command line: outputs and clear errors on bad input.

mod common;
use common::{kestrel, path_str, repo_root};

fn copy_set(dst: &std::path::Path) {
    let src = repo_root().join("tests/fixtures/visdrone/sets/A");
    for sub in ["images", "annotations", "results"] {
        std::fs::create_dir_all(dst.join(sub)).unwrap();
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(sub).join(e.file_name())).unwrap();
        }
    }
}

fn run(set: &std::path::Path, extra: &[&str]) -> std::process::Output {
    kestrel()
        .args(["eval", "--dataset", path_str(set), "--detections"])
        .arg(set.join("results"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn table_json_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    copy_set(tmp.path());
    let plots = tmp.path().join("plots");
    let json = tmp.path().join("r.json");
    let o = run(
        tmp.path(),
        &["--json", path_str(&json), "--plots", path_str(&plots)],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("pedestrian") && table.contains("all (weighted)"),
        "{table}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for k in ["AP", "AP50", "AP75", "AR1", "AR10", "AR100", "AR500"] {
        let x = v[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }
    assert!(v["per_class"].as_array().unwrap().len() >= 5);
    let pngs = std::fs::read_dir(&plots).unwrap().count();
    assert_eq!(pngs, v["per_class"].as_array().unwrap().len());
    let img = image::open(plots.join("pr_01_pedestrian.png")).unwrap();
    assert_eq!((img.width(), img.height()), (400, 400));
}

#[test]
fn malformed_result_line_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    copy_set(tmp.path());
    let mut names: Vec<_> = std::fs::read_dir(tmp.path().join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let f = &names[1];
    let mut text = std::fs::read_to_string(f).unwrap();
    text.push_str("1,2,3,oops,0.5,4,-1,-1\n");
    let line = text.lines().count();
    std::fs::write(f, text).unwrap();
    let o = run(tmp.path(), &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let want = format!("{}:{line}: column 4", f.display());
    assert!(err.contains(&want), "{err}\nwanted {want}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_result_file_and_bad_jpeg_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    copy_set(tmp.path());
    let mut res: Vec<_> = std::fs::read_dir(tmp.path().join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    res.sort();
    std::fs::remove_file(&res[0]).unwrap();
    let o = run(tmp.path(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("result file missing"),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    copy_set(tmp.path());
    let mut imgs: Vec<_> = std::fs::read_dir(tmp.path().join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    imgs.sort();
    std::fs::write(&imgs[2], b"not a jpeg").unwrap();
    let o = run(tmp.path(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("cannot read the image size"),
        "{err}"
    );
}

#[test]
fn bad_degrade_value_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    copy_set(tmp.path());
    let o = run(tmp.path(), &["--degrade", "12=0.5"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--degrade"), "{err}");
}

fn vid_set(dst: &std::path::Path) {
    let src = repo_root().join("tests/fixtures/visdrone/vid_sets/V1");
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    };
    copy(&src.join("annotations"), &dst.join("annotations"));
    copy(&src.join("results"), &dst.join("results"));
    for e in std::fs::read_dir(src.join("sequences")).unwrap() {
        let e = e.unwrap();
        copy(&e.path(), &dst.join("sequences").join(e.file_name()));
    }
}

fn sorted_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn vid_malformed_lines_missing_frame_and_ambiguous_layout_are_clear_errors() {
    // A result line with 8 columns in a VID set: file and line named.
    let tmp = tempfile::tempdir().unwrap();
    vid_set(tmp.path());
    let f = &sorted_files(&tmp.path().join("results"))[2];
    let mut text = std::fs::read_to_string(f).unwrap();
    text.push_str("1,2,3,4,0.5,4,-1,-1\n");
    let line = text.lines().count();
    std::fs::write(f, text).unwrap();
    let o = run(tmp.path(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    let want = format!(
        "{}:{line}: expected 10 comma-separated numbers",
        f.display()
    );
    assert!(
        !o.status.success() && err.contains(&want),
        "{err}\nwanted {want}"
    );

    // A GT line with frame 0.
    let tmp = tempfile::tempdir().unwrap();
    vid_set(tmp.path());
    let f = &sorted_files(&tmp.path().join("annotations"))[0];
    std::fs::write(f, "0,1,10,10,5,5,1,4,0,0\n").unwrap();
    let o = run(tmp.path(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    let want = format!("{}:1: column 1 (frame_index", f.display());
    assert!(
        !o.status.success() && err.contains(&want),
        "{err}\nwanted {want}"
    );

    // The first frame of a sequence (its size) is missing.
    let tmp = tempfile::tempdir().unwrap();
    vid_set(tmp.path());
    let seq = &sorted_files(&tmp.path().join("sequences"))[1];
    std::fs::remove_file(seq.join("0000001.jpg")).unwrap();
    let o = run(tmp.path(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("0000001.jpg") && err.contains("image size"),
        "{err}"
    );

    // Both layouts in one folder: asks for --layout; --layout vid then works.
    let tmp = tempfile::tempdir().unwrap();
    vid_set(tmp.path());
    std::fs::create_dir_all(tmp.path().join("images")).unwrap();
    let o = run(tmp.path(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--layout"), "{err}");
    let o = run(tmp.path(), &["--layout", "vid"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}
