//! The camera path above the V4L2 call, through the whole pipeline (capture thread → inference
//! with the real yolov3-tiny → JSONL sink): a fake device behind the same `CameraDevice` trait as
//! the nokhwa one, unplugged mid-run and reopened with backoff; driver timestamps on CLOCK_MONOTONIC.

mod common;
use common::*;
use kestrel::capture::fake_camera::{CameraSource, FakeCamera};
use kestrel::capture::spec::SourceOptions;
use kestrel::capture::{monotonic_ns, FrameSource, SourceSpec};
use kestrel::pipeline::model::build_detector;
use kestrel::pipeline::{run_source, OpenSource, RunPlan};
use kestrel::publish::jsonl::JsonlSink;
use kestrel::publish::Sink;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn photos() -> Vec<image::RgbImage> {
    ["bus.jpg", "zidane.jpg"]
        .iter()
        .map(|n| {
            let img = image::open(asset(n)).expect("real photo").to_rgb8();
            image::imageops::resize(&img, 320, 240, image::imageops::FilterType::Triangle)
        })
        .collect()
}

#[test]
fn fake_camera_unplugged_mid_run_is_reopened_and_every_stamp_is_monotonic() {
    let mut dev = FakeCamera::new(photos(), 20.0);
    dev.age = Duration::from_millis(30);
    dev.unplug_after = Some(3);
    dev.absent_opens = 3; // backoff 50 + 100 + 200 ms before it comes back
    let opens = dev.opens.clone();
    let open: OpenSource =
        Box::new(move || Ok(Box::new(CameraSource::new(dev)) as Box<dyn FrameSource>));

    let (detector, names) = build_detector(&tiny_model_args(256)).expect("real yolov3-tiny");
    let d = tempfile::tempdir().unwrap();
    let jl = d.path().join("cam.jsonl");
    let sinks: Vec<Box<dyn Sink>> =
        vec![Box::new(JsonlSink::create(path_str(&jl), names).unwrap())];
    let plan = RunPlan {
        source: SourceSpec::Camera(0),
        source_opts: SourceOptions::default(),
        max_frames: Some(8),
        duration: Some(Duration::from_secs(60)),
        stats_every: Duration::from_secs(60),
        publish_queue: 8,
    };
    let t_start = monotonic_ns();
    // live source: the camera never waits for the model, stale frames are dropped
    let stats = run_source(
        open,
        false,
        plan,
        Box::new(detector),
        sinks,
        None,
        Arc::new(AtomicBool::new(false)),
    )
    .expect("run completes");
    let t_end = monotonic_ns();

    assert_eq!(stats.frames_in, 8, "max-frames bounds a camera run");
    assert_eq!(stats.source_reopens, 1, "one unplug, one reopen");
    assert_eq!(
        opens.load(Ordering::Relaxed),
        1 + 3 + 1,
        "first open, 3 absent, then back"
    );
    assert_eq!(
        stats.frames_out + stats.dropped_stale,
        8,
        "every frame published or counted as dropped"
    );
    assert_eq!(stats.summary()["source_reopens"], 1);

    let v: Vec<Value> = std::fs::read_to_string(&jl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len() as u64, stats.frames_out);
    let seq: Vec<u64> = v.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    let t: Vec<u64> = v
        .iter()
        .map(|l| l["t_capture_ns"].as_u64().unwrap())
        .collect();
    assert!(seq.windows(2).all(|w| w[0] < w[1]), "in order: {seq:?}");
    assert!(t.windows(2).all(|w| w[0] < w[1]), "monotonic stamps: {t:?}");
    assert!(
        t[0] + 30_000_000 >= t_start && *t.last().unwrap() <= t_end,
        "stamps on CLOCK_MONOTONIC"
    );
    assert!(
        v.iter().all(|l| l["latency_ms"].as_f64().unwrap() >= 30.0),
        "driver age (30 ms) is part of the latency"
    );
    // the unplug sits between frames 2 and 3: the published frames around it span the backoff
    let before = seq
        .iter()
        .rposition(|&s| s <= 2)
        .expect("a frame before the unplug");
    let after = seq
        .iter()
        .position(|&s| s >= 3)
        .expect("a frame after the reopen");
    let gap_ms = (t[after] - t[before]) / 1_000_000;
    assert!(
        gap_ms >= 350,
        "reopen waited for the 50+100+200 ms backoff: {gap_ms} ms"
    );
    assert!(
        v.iter()
            .any(|l| !l["detections"].as_array().unwrap().is_empty()),
        "real detections"
    );
    assert!(v.iter().all(|l| l["source"] == "camera:fake"), "{:?}", v[0]);
}
