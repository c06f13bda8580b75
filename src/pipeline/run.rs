//! The three threads of a run and how they stop: capture → newest-wins slot → inference →
//! bounded publisher queue → sinks. Stopping (signal, `--duration`, `--max-frames`, source end)
//! always flows downstream: capture stops, the others drain what is queued, sinks flush.

use super::detector::FrameDetector;
use super::latest::latest;
use super::stats::Stats;
use super::PipelineError;
use crate::capture::spec::SourceOptions;
use crate::capture::{monotonic_ns, open_source, CaptureError, Frame, FrameSource, SourceSpec};
use crate::publish::frames::FramesSink;
use crate::publish::{FrameReport, Health, Sink};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a run needs besides its detector and sinks.
pub struct RunPlan {
    pub source: SourceSpec,
    pub source_opts: SourceOptions,
    pub max_frames: Option<u64>,
    pub duration: Option<Duration>,
    pub stats_every: Duration,
    pub publish_queue: usize,
}

type SharedStats = Arc<Mutex<Stats>>;

/// Inference failures in a row before the pipeline reports itself failed: one bad frame is
/// noise, three mean the model (or the GPU under it) is broken.
pub const FAILED_AFTER: u32 = 3;

/// What the publisher thread receives: processed frames, and the rare change of health (sent
/// blocking, with a timeout, so it is not lost to a full queue).
enum ToPublisher {
    Frame(FrameReport, Arc<image::RgbImage>),
    Health(Health),
}

fn send_health(tx: &Sender<ToPublisher>, health: Health) {
    match &health {
        Health::Failed(why) => tracing::error!("pipeline failed: {why}"),
        Health::Running => tracing::info!("pipeline running again"),
    }
    if tx
        .send_timeout(ToPublisher::Health(health), Duration::from_secs(1))
        .is_err()
    {
        tracing::warn!("publisher did not take the health change");
    }
}

/// Tells every sink the run failed before its threads started (model or source), so a flight
/// controller hears CRITICAL rather than silence.
pub fn report_failure(sinks: &mut [Box<dyn Sink>], reason: &str) {
    let failed = Health::Failed(reason.to_string());
    for sink in sinks.iter_mut() {
        sink.health(&failed);
        if let Err(e) = sink.flush() {
            tracing::warn!("sink {}: flush: {e}", sink.name());
        }
    }
}

fn with<F: FnOnce(&mut Stats)>(stats: &SharedStats, f: F) {
    if let Ok(mut s) = stats.lock() {
        f(&mut s);
    }
}

fn ms_since(t_ns: u64) -> f64 {
    monotonic_ns().saturating_sub(t_ns) as f64 / 1e6
}

/// Opens a source on the capture thread (cameras are tied to the thread that opened them).
pub type OpenSource = Box<dyn FnOnce() -> Result<Box<dyn FrameSource>, CaptureError> + Send>;

/// Runs until the source ends, a limit is reached or `stop` is set; returns the final stats.
///
/// # Errors
/// The source cannot be opened, or a thread panicked.
pub fn run_pipeline(
    plan: RunPlan,
    detector: Box<dyn FrameDetector>,
    sinks: Vec<Box<dyn Sink>>,
    frames_sink: Option<FramesSink>,
    stop: Arc<AtomicBool>,
) -> Result<Stats, PipelineError> {
    // an unpaced file source waits for the model (none lost); live and paced sources drop stale frames
    let blocking = plan.source_opts.fps.is_none() && !matches!(plan.source, SourceSpec::Camera(_));
    let (spec, opts) = (plan.source.clone(), plan.source_opts.clone());
    let open: OpenSource = Box::new(move || open_source(&spec, &opts));
    run_source(open, blocking, plan, detector, sinks, frames_sink, stop)
}

/// [`run_pipeline`] with any source: what a custom [`FrameSource`] (or a camera driven by a fake
/// device in tests) plugs into. `blocking` = the source waits for the model instead of dropping
/// stale frames. `plan.source` and `plan.source_opts` are not used.
///
/// # Errors
/// The source cannot be opened, or a thread panicked.
pub fn run_source(
    open: OpenSource,
    blocking: bool,
    plan: RunPlan,
    detector: Box<dyn FrameDetector>,
    mut sinks: Vec<Box<dyn Sink>>,
    frames_sink: Option<FramesSink>,
    stop: Arc<AtomicBool>,
) -> Result<Stats, PipelineError> {
    let stats: SharedStats = Arc::new(Mutex::new(Stats::default()));
    let max_frames = plan.max_frames;
    let (slot_tx, slot_rx) = latest::<Frame>(blocking);
    let (pub_tx, pub_rx) = bounded::<ToPublisher>(plan.publish_queue);
    let (open_tx, open_rx) = bounded::<Result<(), CaptureError>>(1);

    let capture = {
        let (stats, stop, health_tx) = (stats.clone(), stop.clone(), pub_tx.clone());
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let mut source = match open() {
                    Ok(s) => {
                        let _ = open_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = open_tx.send(Err(e));
                        return;
                    }
                };
                let mut taken = 0u64;
                while !stop.load(Ordering::Relaxed) && max_frames.is_none_or(|m| taken < m) {
                    let span = tracing::debug_span!("capture", taken).entered();
                    let next = source.next_frame();
                    drop(span);
                    match next {
                        Ok(Some(frame)) => {
                            taken += 1;
                            // capture time is stamped before decoding: this is decode (+ driver age for cameras)
                            let decode_ms = ms_since(frame.t_capture_ns);
                            let reopens = source.reopens();
                            with(&stats, |s| {
                                s.frames_in += 1;
                                s.source_reopens = reopens;
                                s.stage("decode", decode_ms);
                            });
                            match slot_tx.send(frame) {
                                Ok(dropped) => with(&stats, |s| s.dropped_stale += dropped),
                                Err(_) => break,
                            }
                        }
                        Ok(None) => break,
                        Err(e @ CaptureError::Decode { .. }) => {
                            taken += 1;
                            tracing::warn!("skipping frame: {e}");
                            with(&stats, |s| s.decode_errors += 1);
                        }
                        Err(e) => {
                            send_health(&health_tx, Health::Failed(format!("source failed: {e}")));
                            break;
                        }
                    }
                }
            })
    }
    .map_err(|e| PipelineError::Thread(e.to_string()))?;

    match open_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = capture.join();
            report_failure(&mut sinks, &format!("cannot open the source: {e}"));
            return Err(e.into());
        }
        Err(_) => {
            return Err(PipelineError::Thread(
                "capture thread ended before opening the source".into(),
            ))
        }
    }

    let inference = spawn_inference(detector, slot_rx, pub_tx, stats.clone())?;
    let publisher = spawn_publisher(sinks, frames_sink, pub_rx, stats.clone())?;

    let started = Instant::now();
    let mut last_report = Instant::now();
    while !publisher.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
        if plan.duration.is_some_and(|d| started.elapsed() >= d) {
            stop.store(true, Ordering::Relaxed);
        }
        if last_report.elapsed() >= plan.stats_every {
            last_report = Instant::now();
            with(&stats, |s| tracing::info!("stats: {}", s.line()));
        }
    }
    for (name, h) in [
        ("capture", capture),
        ("inference", inference),
        ("publisher", publisher),
    ] {
        h.join()
            .map_err(|_| PipelineError::Thread(format!("{name} thread panicked")))?;
    }
    let out = stats
        .lock()
        .map(|s| s.clone())
        .map_err(|_| PipelineError::Thread("stats poisoned".into()))?;
    Ok(out)
}

fn spawn_inference(
    mut detector: Box<dyn FrameDetector>,
    rx: Receiver<Frame>,
    tx: Sender<ToPublisher>,
    stats: SharedStats,
) -> Result<std::thread::JoinHandle<()>, PipelineError> {
    std::thread::Builder::new()
        .name("inference".into())
        .spawn(move || {
            let mut failures_in_a_row = 0u32;
            for frame in rx.iter() {
                let queue_ms = ms_since(frame.t_capture_ns);
                let span = tracing::debug_span!("inference", seq = frame.seq).entered();
                let result = detector.detect(&frame.image);
                drop(span);
                let (detections, times) = match result {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("frame {}: detection failed: {e}", frame.seq);
                        with(&stats, |s| s.infer_errors += 1);
                        failures_in_a_row += 1;
                        if failures_in_a_row == FAILED_AFTER {
                            let why = format!("inference failed {FAILED_AFTER}x in a row: {e}");
                            send_health(&tx, Health::Failed(why));
                        }
                        continue;
                    }
                };
                if failures_in_a_row >= FAILED_AFTER {
                    send_health(&tx, Health::Running);
                }
                failures_in_a_row = 0;
                let (w, h) = frame.image.dimensions();
                let report = FrameReport {
                    seq: frame.seq,
                    t_capture_ns: frame.t_capture_ns,
                    source_id: frame.source_id,
                    path: frame.path,
                    width: w,
                    height: h,
                    detections,
                    latency_ms: ms_since(frame.t_capture_ns),
                };
                let wait = queue_ms;
                with(&stats, |s| {
                    s.frames_inferred += 1;
                    s.stage("queue", wait);
                    s.stage("preprocess", times.preprocess_ms);
                    s.stage("forward", times.forward_ms);
                    s.stage("postprocess", times.postprocess_ms);
                });
                let item = ToPublisher::Frame(report, Arc::new(frame.image));
                if tx.try_send(item).is_err() {
                    with(&stats, |s| s.dropped_publish += 1);
                }
            }
        })
        .map_err(|e| PipelineError::Thread(e.to_string()))
}

fn spawn_publisher(
    mut sinks: Vec<Box<dyn Sink>>,
    mut frames_sink: Option<FramesSink>,
    rx: Receiver<ToPublisher>,
    stats: SharedStats,
) -> Result<std::thread::JoinHandle<()>, PipelineError> {
    std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            for item in rx.iter() {
                let (report, image) = match item {
                    ToPublisher::Frame(r, i) => (r, i),
                    ToPublisher::Health(h) => {
                        sinks.iter_mut().for_each(|s| s.health(&h));
                        continue;
                    }
                };
                let t0 = Instant::now();
                let span = tracing::debug_span!("publish", seq = report.seq).entered();
                let mut errors = 0;
                for sink in sinks.iter_mut() {
                    if let Err(e) = sink.publish(&report) {
                        tracing::warn!("sink {}: {e}", sink.name());
                        errors += 1;
                    }
                }
                if let Some(fs) = frames_sink.as_mut() {
                    if let Err(e) = fs.publish_frame(&report, &image) {
                        tracing::warn!("annotated frames: {e}");
                        errors += 1;
                    }
                }
                drop(span);
                let publish_ms = t0.elapsed().as_secs_f64() * 1e3;
                let e2e = ms_since(report.t_capture_ns);
                with(&stats, |s| {
                    s.frames_out += 1;
                    s.sink_errors += errors;
                    s.detections += report.detections.len() as u64;
                    s.stage("publish", publish_ms);
                    s.end_to_end.push(e2e);
                });
            }
            for sink in sinks.iter_mut() {
                if let Err(e) = sink.flush() {
                    tracing::warn!("sink {}: flush: {e}", sink.name());
                    with(&stats, |s| s.sink_errors += 1);
                }
            }
        })
        .map_err(|e| PipelineError::Thread(e.to_string()))
}
