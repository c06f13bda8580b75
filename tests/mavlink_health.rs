//! The flight controller hears when the pipeline fails: CRITICAL heartbeat plus a CRITICAL
//! STATUSTEXT saying why, and ACTIVE again when frames flow. An in-process fake FC (the
//! `mavlink` crate on udpin) listens to (1) a replay through the real yolov3-tiny whose
//! inference fails on four frames in a row (fault injected around the real model, as a GPU fault
//! would), and (2) the `kestrel` binary given a truncated weights file.

mod common;
mod mavlink_support;
use common::*;
use kestrel::capture::spec::SourceOptions;
use kestrel::capture::SourceSpec;
use kestrel::detect::{DetectError, Detection};
use kestrel::pipeline::detector::{FrameDetector, StageTimes};
use kestrel::pipeline::model::build_detector;
use kestrel::pipeline::{run_pipeline, RunPlan, FAILED_AFTER};
use kestrel::publish::mavlink::{MavlinkConfig, MavlinkSink};
use kestrel::publish::Sink;
use mavlink::dialects::ardupilotmega::{MavMessage, MavSeverity, MavState};
use mavlink::MavConnection;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake FC heard from Kestrel: heartbeat states in order, and STATUSTEXTs (chunks
/// reassembled by id) with their severity.
#[derive(Default)]
struct Heard {
    states: Vec<MavState>,
    texts: Vec<(MavSeverity, String)>,
    chunks: BTreeMap<u16, (MavSeverity, Vec<(u8, String)>)>,
}

impl Heard {
    fn record(&mut self, msg: MavMessage) {
        match msg {
            MavMessage::HEARTBEAT(h) if self.states.last() != Some(&h.system_status) => {
                self.states.push(h.system_status);
            }
            MavMessage::STATUSTEXT(t) => {
                let text = t.text.to_str().unwrap_or("").to_string();
                if t.id == 0 {
                    self.texts.push((t.severity, text));
                    return;
                }
                let e = self.chunks.entry(t.id).or_insert((t.severity, Vec::new()));
                e.1.push((t.chunk_seq, text.clone()));
                if text.chars().count() < 50 {
                    let (sev, mut parts) = self.chunks.remove(&t.id).unwrap();
                    parts.sort();
                    self.texts
                        .push((sev, parts.into_iter().map(|(_, s)| s).collect()));
                }
            }
            _ => {}
        }
    }

    /// True when `want` occurs in order (not necessarily adjacent) in the heard states.
    fn states_in_order(&self, want: &[MavState]) -> bool {
        let mut it = self.states.iter();
        want.iter().all(|w| it.any(|s| s == w))
    }
}

struct FakeFc {
    port: u16,
    heard: Arc<Mutex<Heard>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeFc {
    fn start() -> Self {
        let port = mavlink_support::free_udp_port();
        let cfg = mavlink::UdpConfig::new(format!("127.0.0.1:{port}"), mavlink::UdpMode::Udpin)
            .read_timeout(Duration::from_millis(50));
        let conn = mavlink::Connectable::connect::<MavMessage>(&cfg).unwrap();
        let heard = Arc::new(Mutex::new(Heard::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (heard.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok((hdr, msg)) = conn.recv() {
                    if hdr.component_id == 191 {
                        h.lock().unwrap().record(msg);
                    }
                }
            }
        });
        FakeFc {
            port,
            heard,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits a little for the last datagrams, stops listening and returns what was heard.
    fn finish(mut self) -> Heard {
        std::thread::sleep(Duration::from_millis(300));
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.heard.lock().unwrap())
    }
}

/// The real detector, with inference failing on calls `fail_from..fail_from + fail_count`.
struct FaultInjected<D> {
    inner: D,
    calls: u64,
    fail_from: u64,
    fail_count: u64,
}

impl<D: FrameDetector> FrameDetector for FaultInjected<D> {
    fn detect(
        &mut self,
        img: &image::RgbImage,
    ) -> Result<(Vec<Detection>, StageTimes), DetectError> {
        self.calls += 1;
        if (self.fail_from..self.fail_from + self.fail_count).contains(&self.calls) {
            return Err(DetectError::Tensor {
                stage: "forward",
                source: candle_core::Error::Msg("CUDA_ERROR_LAUNCH_FAILED (injected)".into()),
            });
        }
        self.inner.detect(img)
    }
}

fn replay_dir(n: usize) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for i in 0..n {
        let src = asset(if i % 2 == 0 { "bus.jpg" } else { "zidane.jpg" });
        std::fs::copy(src, d.path().join(format!("{:07}.jpg", i + 1))).unwrap();
    }
    d
}

#[test]
fn inference_failing_in_a_row_turns_the_heartbeat_critical_then_active_again() {
    let fc = FakeFc::start();
    let sink = MavlinkSink::start(&MavlinkConfig {
        url: format!("udpout:127.0.0.1:{}", fc.port),
        dets_rate_hz: 1000.0,
        ..Default::default()
    })
    .unwrap();
    let (real, _) = build_detector(&tiny_model_args(256)).expect("real yolov3-tiny");
    let fail_count = u64::from(FAILED_AFTER) + 1;
    let detector = FaultInjected {
        inner: real,
        calls: 0,
        fail_from: 3,
        fail_count,
    };
    let frames = replay_dir(10);
    let plan = RunPlan {
        source: SourceSpec::Replay(frames.path().to_path_buf()),
        source_opts: SourceOptions::default(),
        max_frames: None,
        duration: None,
        stats_every: Duration::from_secs(60),
        publish_queue: 16,
    };
    let sinks: Vec<Box<dyn Sink>> = vec![Box::new(sink)];
    let stats = run_pipeline(
        plan,
        Box::new(detector),
        sinks,
        None,
        Arc::new(AtomicBool::new(false)),
    )
    .expect("the run survives failing frames");
    assert_eq!(stats.infer_errors, fail_count);
    assert_eq!(stats.frames_out, 10 - fail_count);

    let heard = fc.finish();
    assert!(
        heard.states_in_order(&[
            MavState::MAV_STATE_ACTIVE,
            MavState::MAV_STATE_CRITICAL,
            MavState::MAV_STATE_ACTIVE
        ]),
        "heartbeat states heard: {:?}",
        heard.states
    );
    let critical: Vec<&String> = heard
        .texts
        .iter()
        .filter(|(s, _)| *s == MavSeverity::MAV_SEVERITY_CRITICAL)
        .map(|(_, t)| t)
        .collect();
    assert!(
        critical
            .iter()
            .any(|t| t.contains("inference failed")
                && t.contains("CUDA_ERROR_LAUNCH_FAILED (injected)")),
        "CRITICAL texts heard: {critical:?}"
    );
}

#[test]
fn a_model_that_does_not_load_is_reported_critical_with_the_file_name() {
    let fc = FakeFc::start();
    let d = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(asset("yolov3-tiny.weights")).unwrap();
    let truncated = d.path().join("truncated-tiny.weights");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let frames = replay_dir(2);
    let out = kestrel()
        .args(["run", "--source"])
        .arg(format!("replay:{}", path_str(frames.path())))
        .arg("--cfg")
        .arg(asset("yolov3-tiny.cfg"))
        .arg("--weights")
        .arg(&truncated)
        .arg("--mavlink")
        .arg(format!("udpout:127.0.0.1:{}", fc.port))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a truncated model must fail the run");
    assert!(
        stderr.contains("truncated-tiny.weights"),
        "stderr: {stderr}"
    );

    let heard = fc.finish();
    // STANDBY is only heard when loading outlasts the first beat; a truncated file fails at once.
    assert_eq!(
        heard.states.last(),
        Some(&MavState::MAV_STATE_CRITICAL),
        "heartbeat states heard: {:?}",
        heard.states
    );
    assert!(
        !heard.states.contains(&MavState::MAV_STATE_ACTIVE),
        "never ACTIVE without a model: {:?}",
        heard.states
    );
    assert!(
        heard
            .texts
            .iter()
            .any(|(s, t)| *s == MavSeverity::MAV_SEVERITY_CRITICAL
                && t.contains("truncated-tiny.weights")),
        "texts heard: {:?}",
        heard.texts
    );
}
