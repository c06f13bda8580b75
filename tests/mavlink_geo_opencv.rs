//! The committed real calibration (calib/opencv_tutorial_640x480.json) read by OpenCV's own
//! cv2.FileStorage, and Kestrel's undistortion checked against cv2.undistortPointsIter.

mod common;

use kestrel::geo::Intrinsics;

#[test]
fn undistortion_matches_opencv_on_the_committed_calibration() {
    let path = common::repo_root().join("calib/opencv_tutorial_640x480.json");
    let cam = Intrinsics::load(&path).unwrap();
    let pixels = [
        (10.0, 10.0),
        (600.0, 400.0),
        (320.0, 240.0),
        (100.0, 450.0),
        (630.0, 20.0),
    ];
    let mut args = vec![common::path_str(&path).to_string()];
    for (u, v) in pixels {
        args.push(u.to_string());
        args.push(v.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = common::run_python("undistort_points.py", &args);
    let cv: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cv["size"], serde_json::json!([cam.width, cam.height]));
    assert_eq!(cv["K"][0][0].as_f64().unwrap(), cam.fx);
    assert_eq!(cv["D"][4].as_f64().unwrap(), cam.dist[4]);
    for (i, (u, v)) in pixels.iter().enumerate() {
        let (x, y) = cam.undistort(*u, *v);
        let (cx, cy) = (
            cv["xy"][i][0].as_f64().unwrap(),
            cv["xy"][i][1].as_f64().unwrap(),
        );
        // 1e-4 in normalised coordinates = 0.07 px at fx 657.
        assert!(
            (x - cx).abs() < 1e-4 && (y - cy).abs() < 1e-4,
            "pixel ({u},{v}): ({x},{y}) vs OpenCV ({cx},{cy})"
        );
    }
}
