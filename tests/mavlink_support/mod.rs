//! Shared by the MAVLink tests: known FrameReports, a calibration file, the check that the
//! DETS arrays a peer decoded equal the reports' detections, and the pymavlink flight controller
//! (`tests/peers/fake_fc.py`) as a child process. Test crates using it also declare `mod common;`.
#![allow(dead_code)]

use kestrel::detect::{BBox, Detection};
use kestrel::publish::mavlink::MavlinkConfig;
use kestrel::publish::FrameReport;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A UDP port free on 127.0.0.1 a moment ago (the probing socket is closed again).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// Starts the pymavlink flight controller on `url` for `duration_s`, with `extra` arguments.
pub fn spawn_peer(url: &str, duration_s: f64, extra: &[&str]) -> Child {
    Command::new(crate::common::python())
        .arg(crate::common::repo_root().join("tests/peers/fake_fc.py"))
        .arg(url)
        .args(["--duration", &duration_s.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tests/peers/fake_fc.py")
}

/// Waits for the peer and returns the JSON summary it prints.
pub fn peer_result(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "fake_fc.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("fake_fc.py prints JSON")
}

/// The TIMESYNC answer delays the peer measured (ms), sorted.
pub fn timesync_delays(peer: &serde_json::Value) -> Vec<f64> {
    let mut ts: Vec<f64> = peer["timesync_delay_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    ts.sort_by(f64::total_cmp);
    println!("TIMESYNC answer delays (ms, sorted): {ts:?}");
    ts
}

pub const W: u32 = 1280;
pub const H: u32 = 720;

/// Frame `seq` has `seq % 13` detections (0..=12, so some need two DETS messages); the first
/// is the geo target: class 3 centred on pixel (800, 330).
pub fn report(seq: u64, t_capture_ns: u64) -> FrameReport {
    let n = (seq % 13) as usize;
    let detections = (0..n)
        .map(|k| {
            if k == 0 {
                return Detection {
                    class_id: 3,
                    score: 0.9,
                    bbox: BBox {
                        x: 780.0,
                        y: 320.0,
                        w: 40.0,
                        h: 20.0,
                    },
                };
            }
            Detection {
                class_id: [0, 1, 2, 4, 5, 6, 7, 8, 9][k % 9],
                score: 0.3 + 0.05 * k as f32,
                bbox: BBox {
                    x: 10.0 + 50.0 * k as f32,
                    y: 20.0 + 30.0 * k as f32,
                    w: 30.0 + seq as f32 % 7.0,
                    h: 40.0,
                },
            }
        })
        .collect();
    FrameReport {
        seq,
        t_capture_ns,
        source_id: "test".into(),
        path: None,
        width: W,
        height: H,
        detections,
        latency_ms: 12.5,
    }
}

/// OpenCV FileStorage JSON of an ideal 1280×720 pinhole, fx = fy = 640.
pub fn write_calib(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("cam.json");
    std::fs::write(
        &p,
        r#"{"image_width": 1280, "image_height": 720,
 "camera_matrix": {"type_id": "opencv-matrix", "rows": 3, "cols": 3, "dt": "d",
   "data": [640.0, 0.0, 640.0, 0.0, 640.0, 360.0, 0.0, 0.0, 1.0]},
 "distortion_coefficients": {"type_id": "opencv-matrix", "rows": 5, "cols": 1, "dt": "d",
   "data": [0.0, 0.0, 0.0, 0.0, 0.0]}}"#,
    )
    .unwrap();
    p
}

pub fn config(url: String, calib: &Path) -> MavlinkConfig {
    MavlinkConfig {
        url,
        dets_rate_hz: 100.0,
        class_priority: vec![3],
        camera_calib: Some(calib.to_path_buf()),
        timesync_period_s: 0.5,
        ..Default::default()
    }
}

/// The normalised floats a DETS array must carry for `r` (first message: detections 0..9).
pub fn expected_dets(r: &FrameReport) -> Vec<Vec<f32>> {
    let (w, h) = (r.width as f32, r.height as f32);
    r.detections
        .iter()
        .map(|d| {
            let b = d.bbox;
            vec![
                d.class_id as f32,
                d.score,
                b.x / w,
                b.y / h,
                (b.x + b.w) / w,
                (b.y + b.h) / h,
            ]
        })
        .collect()
}

/// Compares every DETS array the peer decoded with the report of the same seq; returns how
/// many frames were complete.
pub fn check_dets(peer: &serde_json::Value, reports: &BTreeMap<u64, FrameReport>) -> usize {
    let mut by_frame: BTreeMap<u64, Vec<&serde_json::Value>> = BTreeMap::new();
    for d in peer["dets"].as_array().unwrap() {
        assert_eq!(d["name"], "DETS");
        by_frame
            .entry(d["array_id"].as_u64().unwrap())
            .or_default()
            .push(d);
    }
    let mut complete = 0;
    for (seq, msgs) in &by_frame {
        let r = &reports[seq];
        let want = expected_dets(r);
        let mut got = Vec::new();
        for m in msgs {
            let data: Vec<f32> = m["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(data[0] as usize, r.detections.len(), "frame {seq}: count");
            assert_eq!(
                m["time_usec"].as_u64().unwrap(),
                r.t_capture_ns / 1000,
                "frame {seq}: time"
            );
            assert_eq!((data[55], data[56]), (W as f32, H as f32));
            let chunk = data[57] as usize;
            let here = (r.detections.len() - 9 * chunk).min(9);
            for k in 0..here {
                got.push((9 * chunk + k, data[1 + 6 * k..7 + 6 * k].to_vec()));
            }
        }
        got.sort_by_key(|(i, _)| *i);
        if got.len() == want.len() {
            complete += 1;
            for ((i, g), w) in got.iter().zip(&want) {
                for (a, b) in g.iter().zip(w) {
                    assert!((a - b).abs() < 1e-6, "frame {seq} det {i}: {g:?} != {w:?}");
                }
            }
        }
    }
    complete
}
