//! `kestrel run` end to end against a pymavlink flight controller (tests/peers/fake_fc.py on
//! 127.0.0.1): the real yolov3-tiny on the real photos, replayed in a loop, publishing JSONL and
//! MAVLink at once. Every DETS array the peer decodes must carry exactly the JSONL sink's
//! detections for the same frame; heartbeats, TIMESYNC answers and NAMED_VALUE_FLOAT arrive.

mod common;
mod mavlink_support;
use common::*;
use mavlink_support::{free_udp_port, peer_result, spawn_peer, timesync_delays};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The JSONL lines of the run, by frame number.
fn jsonl_frames(path: &std::path::Path) -> BTreeMap<u64, Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSONL line");
            (v["frame"].as_u64().expect("frame field"), v)
        })
        .collect()
}

/// DETS messages regrouped per frame: (time_usec, count, width, height, detections by index).
type Dets = (u64, usize, f32, f32, BTreeMap<usize, Vec<f32>>);

fn dets_by_frame(peer: &Value) -> BTreeMap<u64, Dets> {
    let mut out: BTreeMap<u64, Dets> = BTreeMap::new();
    for m in peer["dets"].as_array().unwrap() {
        assert_eq!(m["name"], "DETS");
        let data: Vec<f32> = m["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let count = data[0] as usize;
        let chunk = data[57] as usize;
        let entry = out.entry(m["array_id"].as_u64().unwrap()).or_insert((
            m["time_usec"].as_u64().unwrap(),
            count,
            data[55],
            data[56],
            BTreeMap::new(),
        ));
        assert_eq!(entry.1, count, "count differs between a frame's messages");
        for k in 0..count.saturating_sub(9 * chunk).min(9) {
            entry
                .4
                .insert(9 * chunk + k, data[1 + 6 * k..7 + 6 * k].to_vec());
        }
    }
    out
}

/// The DETS floats the JSONL detections of one frame must produce.
fn expected(line: &Value) -> Vec<Vec<f32>> {
    let (w, h) = (
        line["width"].as_f64().unwrap() as f32,
        line["height"].as_f64().unwrap() as f32,
    );
    line["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let b: Vec<f32> = d["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            vec![
                d["class_id"].as_f64().unwrap() as f32,
                d["score"].as_f64().unwrap() as f32,
                b[0] / w,
                b[1] / h,
                (b[0] + b[2]) / w,
                (b[1] + b[3]) / h,
            ]
        })
        .collect()
}

#[test]
fn run_publishes_to_a_pymavlink_flight_controller_what_it_writes_to_jsonl() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = tmp.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    for (i, name) in ["bus.jpg", "zidane.jpg"].iter().enumerate() {
        std::fs::copy(asset(name), frames.join(format!("{:07}.jpg", i + 1))).unwrap();
    }
    let port = free_udp_port();
    let peer = spawn_peer(&format!("udpin:127.0.0.1:{port}"), 11.0, &[]);
    std::thread::sleep(Duration::from_millis(800));
    let jsonl = tmp.path().join("run.jsonl");
    let run = kestrel()
        .arg("run")
        .arg("--source")
        .arg(format!("replay:{}", frames.display()))
        .args(["--loop", "--fps", "4", "--duration", "6"])
        .args(["--jsonl", path_str(&jsonl)])
        .arg("--mavlink")
        .arg(format!("udpout:127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "kestrel run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let peer = peer_result(peer);
    println!("peer counts: {}", peer["counts"]);

    assert_eq!(peer["bad_data"], 0, "pymavlink found bad frames: {peer}");
    assert_eq!(peer["receive_errors"], 0, "pymavlink receive errors");
    assert_eq!(peer["src"], serde_json::json!([[1, 191]]), "identity");

    let hb: Vec<f64> = peer["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let states = peer["hb_states"].as_array().unwrap();
    assert!(hb.len() >= 4, "heartbeats: {hb:?}");
    // The 1 Hz schedule, once the extra heartbeat sent at once on a state change is set aside.
    let scheduled: Vec<f64> = hb
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || states[*i] == states[*i - 1])
        .map(|(_, t)| *t)
        .collect();
    let gaps: Vec<f64> = scheduled.windows(2).map(|w| w[1] - w[0]).collect();
    println!("heartbeat gaps (s): {gaps:?}, states {states:?}");
    assert!(
        gaps.iter().all(|g| (0.7..1.3).contains(g)),
        "heartbeat not ~1 Hz: {gaps:?}, states {states:?}"
    );
    assert!(
        states.iter().any(|s| s == 4),
        "an ACTIVE heartbeat: {states:?}"
    );

    let lines = jsonl_frames(&jsonl);
    let dets = dets_by_frame(&peer);
    assert!(lines.len() >= 15, "JSONL frames: {}", lines.len());
    let with_boxes = lines
        .values()
        .filter(|l| !l["detections"].as_array().unwrap().is_empty())
        .count();
    assert!(with_boxes >= lines.len() / 2, "real photos give boxes");
    let received = lines.keys().filter(|f| dets.contains_key(f)).count();
    println!(
        "JSONL frames {}, DETS frames {}, in both {received}",
        lines.len(),
        dets.len()
    );
    assert!(
        received * 10 >= lines.len() * 9,
        "DETS for too few frames: {received} of {}",
        lines.len()
    );
    for (frame, (t_usec, count, w, h, got)) in &dets {
        let line = lines
            .get(frame)
            .unwrap_or_else(|| panic!("DETS for frame {frame}, absent from JSONL"));
        assert_eq!(
            *t_usec,
            line["t_capture_ns"].as_u64().unwrap() / 1000,
            "frame {frame}: time_usec = capture time"
        );
        assert_eq!(
            (*w, *h),
            (
                line["width"].as_f64().unwrap() as f32,
                line["height"].as_f64().unwrap() as f32
            ),
            "frame {frame}: image size"
        );
        let want = expected(line);
        assert_eq!(*count, want.len(), "frame {frame}: count");
        assert_eq!(got.len(), want.len(), "frame {frame}: messages missing");
        for (i, w) in want.iter().enumerate() {
            for (a, b) in got[&i].iter().zip(w) {
                assert!(
                    (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                    "frame {frame} det {i}: {:?} != {w:?}",
                    got[&i]
                );
            }
        }
    }

    let ts = timesync_delays(&peer);
    assert!(ts.len() >= 5, "TIMESYNC answers: {ts:?}");
    assert!(
        ts[ts.len() / 2] < 10.0,
        "median TIMESYNC answer ≥ 10 ms: {ts:?}"
    );
    let nvf = peer["counts"]["NAMED_VALUE_FLOAT"].as_u64().unwrap_or(0);
    assert!(nvf >= 3, "NAMED_VALUE_FLOAT at 1 Hz: {nvf}");
}
