//! The sink the pipeline's publisher thread calls: builds each frame's messages and queues
//! them without blocking; the link threads do the I/O.

use super::link::{bump, lock, CountersSnapshot, Shared};
use super::messages::{self, status_text};
use super::{rx, tx, MavlinkConfig, MavlinkError};
use crate::clock::monotonic_ns;
use crate::geo::{project_to_ground, target_angles, Intrinsics};
use crate::publish::{FrameReport, Health, PublishError, Sink};
use crossbeam_channel::{Sender, TrySendError};
use mavlink::dialects::ardupilotmega::{MavMessage, MavSeverity};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

/// What the companion's HEARTBEAT reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KestrelState {
    /// Loading the model / camera.
    Standby,
    /// Processing frames.
    Active,
    /// The pipeline failed.
    Critical,
}

pub struct MavlinkSink {
    shared: Arc<Shared>,
    queue: Option<Sender<MavMessage>>,
    threads: Vec<JoinHandle<()>>,
    intrinsics: Option<Intrinsics>,
    min_frame_gap_ns: u64,
    last_frame_ns: Option<u64>,
}

fn read_signing_key(path: &std::path::Path) -> Result<[u8; 32], MavlinkError> {
    let err = |reason: String| MavlinkError::SigningKey {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8_lossy(&bytes);
    let hex = text.trim();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| err(e.to_string()))?;
        }
        return Ok(key);
    }
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        err(format!(
            "needs 64 hex characters or 32 bytes, has {} bytes",
            bytes.len()
        ))
    })
}

impl MavlinkSink {
    /// Validates the config, loads calibration and key, and starts the link threads. The link
    /// itself may come up later: an absent flight controller is not an error.
    pub fn start(cfg: &MavlinkConfig) -> Result<Self, PublishError> {
        cfg.validate()?;
        let key = match &cfg.signing_key_file {
            Some(p) => Some(read_signing_key(p)?),
            None => None,
        };
        let intrinsics = match &cfg.camera_calib {
            Some(p) => Some(Intrinsics::load(p).map_err(MavlinkError::from)?),
            None => None,
        };
        if cfg.landing_mode && intrinsics.is_none() {
            return Err(MavlinkError::Config {
                field: "landing_mode",
                reason: "needs `camera_calib` for the target angles".into(),
            }
            .into());
        }
        let shared = Arc::new(Shared::new(cfg.clone(), key));
        let (sender, receiver) = crossbeam_channel::bounded(cfg.queue_len);
        let spawn = |name: &'static str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|source| MavlinkError::Thread { name, source })
        };
        let (s1, s2) = (shared.clone(), shared.clone());
        let threads = vec![
            spawn("mavlink-tx", Box::new(move || tx::run(s1, receiver)))?,
            spawn("mavlink-rx", Box::new(move || rx::run(s2)))?,
        ];
        Ok(Self {
            shared,
            queue: Some(sender),
            threads,
            intrinsics,
            min_frame_gap_ns: (1e9 / cfg.dets_rate_hz) as u64,
            last_frame_ns: None,
        })
    }

    /// Changes the HEARTBEAT state; a change is announced with a STATUSTEXT.
    pub fn set_state(&self, state: KestrelState) {
        let (v, text, sev) = match state {
            KestrelState::Standby => (3, "Kestrel: standby", MavSeverity::MAV_SEVERITY_INFO),
            KestrelState::Active => (4, "Kestrel: detecting", MavSeverity::MAV_SEVERITY_INFO),
            KestrelState::Critical => (
                5,
                "Kestrel: pipeline failed",
                MavSeverity::MAV_SEVERITY_CRITICAL,
            ),
        };
        if self.shared.state.swap(v, Ordering::Relaxed) != v {
            self.enqueue(status_text(sev, text));
            self.enqueue(messages::heartbeat(mavlink_state(v)));
        }
    }

    /// Sends a STATUSTEXT (events only: the GCS shows every one to the pilot); long texts go as
    /// MAVLink 2 chunks.
    pub fn status(&self, severity: MavSeverity, text: &str) {
        for m in messages::status_texts(severity, text) {
            self.enqueue(m);
        }
    }

    pub fn counters(&self) -> CountersSnapshot {
        self.shared.counters.snapshot()
    }

    /// The FC clock offset estimated from our TIMESYNC exchanges.
    pub fn clock_offset(&self) -> super::ClockOffset {
        *lock(&self.shared.clock)
    }

    /// The vehicle sysid in use (configured or learned).
    pub fn vehicle_sysid(&self) -> u8 {
        self.shared.sysid.load(Ordering::Relaxed)
    }

    /// Stops and joins the threads (also done on drop).
    pub fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.queue = None;
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a mavlink thread panicked");
            }
        }
    }

    fn enqueue(&self, msg: MavMessage) {
        let Some(q) = &self.queue else { return };
        match q.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                bump(&self.shared.counters.dropped)
            }
        }
    }

    fn frame_messages(&self, r: &FrameReport) -> Vec<MavMessage> {
        let mut out = messages::dets_messages(r);
        let Some(best) = messages::best_target(&r.detections, &self.shared.cfg.class_priority)
        else {
            return out;
        };
        out.push(messages::tracking_image_status(best, r.width, r.height));
        let Some(cam) = &self.intrinsics else {
            return out;
        };
        let cam = if (cam.width, cam.height) == (r.width, r.height) {
            cam.clone()
        } else {
            cam.scaled_to(r.width, r.height)
        };
        let (cu, cv) = (
            f64::from(best.bbox.x + best.bbox.w / 2.0),
            f64::from(best.bbox.y + best.bbox.h / 2.0),
        );
        let (att, pos) = {
            let t = lock(&self.shared.telemetry);
            (t.attitude_at(r.t_capture_ns), t.position_at(r.t_capture_ns))
        };
        let fix = match (att, pos) {
            (Some(a), Some(p)) => {
                project_to_ground(&cam, self.shared.cfg.mount_rpy_deg, &a, &p, cu, cv)
            }
            _ => None,
        };
        if let Some(f) = &fix {
            out.push(messages::tracking_geo_status(f));
        }
        if self.shared.cfg.landing_mode {
            let angles =
                target_angles(&cam, cu, cv, f64::from(best.bbox.w), f64::from(best.bbox.h));
            out.push(messages::landing_target(
                r.t_capture_ns,
                &angles,
                fix.map(|f| f.slant_m),
            ));
        }
        out
    }
}

fn mavlink_state(v: u8) -> mavlink::dialects::ardupilotmega::MavState {
    use mavlink::dialects::ardupilotmega::MavState;
    match v {
        4 => MavState::MAV_STATE_ACTIVE,
        5 => MavState::MAV_STATE_CRITICAL,
        _ => MavState::MAV_STATE_STANDBY,
    }
}

impl Sink for MavlinkSink {
    fn name(&self) -> &str {
        "mavlink"
    }

    /// CRITICAL heartbeat (sent at once, then at 1 Hz) and the reason as a CRITICAL STATUSTEXT;
    /// back to ACTIVE when frames flow again.
    fn health(&mut self, health: &Health) {
        match health {
            Health::Running => self.set_state(KestrelState::Active),
            Health::Failed(reason) => {
                self.set_state(KestrelState::Critical);
                self.status(
                    MavSeverity::MAV_SEVERITY_CRITICAL,
                    &format!("Kestrel: {reason}"),
                );
            }
        }
    }

    fn publish(&mut self, r: &FrameReport) -> Result<(), PublishError> {
        if self.shared.state.load(Ordering::Relaxed) == 3 {
            self.set_state(KestrelState::Active);
        }
        {
            let mut s = lock(&self.shared.stats);
            s.last_count = r.detections.len();
            s.last_latency_ms = r.latency_ms;
            s.frames_in_window += 1;
        }
        let now = monotonic_ns();
        if self
            .last_frame_ns
            .is_some_and(|t| now.saturating_sub(t) < self.min_frame_gap_ns)
        {
            bump(&self.shared.counters.capped_frames);
            return Ok(());
        }
        self.last_frame_ns = Some(now);
        for m in self.frame_messages(r) {
            self.enqueue(m);
        }
        Ok(())
    }
}

impl Drop for MavlinkSink {
    fn drop(&mut self) {
        self.shutdown();
    }
}
