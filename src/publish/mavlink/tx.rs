//! Transmit thread: drains the bounded queue, sends HEARTBEAT + NAMED_VALUE_FLOAT at 1 Hz,
//! TIMESYNC requests, stream requests, and reconnects with exponential backoff (0.1 → 5 s).

use super::link::{bump, lock, Shared};
use super::messages::{heartbeat, named_value, set_message_interval, status_text, timesync};
use crate::clock::monotonic_ns;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use mavlink::dialects::ardupilotmega::{MavMessage, MavSeverity, MavState};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Streams the geo-projection needs: (message id, interval µs).
const STREAMS: [(u32, f32); 4] = [
    (30, 40_000.0),
    (33, 100_000.0),
    (2, 1_000_000.0),
    (132, 100_000.0),
];

pub fn run(shared: Arc<Shared>, queue: Receiver<MavMessage>) {
    let mut backoff = Duration::from_millis(100);
    let mut next_connect = Instant::now();
    let mut next_beat = Instant::now();
    let mut next_sync = Instant::now();
    let mut next_streams = Instant::now();
    let sync_period = Duration::from_secs_f64(shared.cfg.timesync_period_s);
    let boot = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if !shared.is_up() && now >= next_connect {
            match shared.connect() {
                Ok(()) => {
                    tracing::info!(url = %shared.cfg.url, "mavlink link open");
                    backoff = Duration::from_millis(100);
                    // Ask for streams again once the (maybe rebooted) autopilot is heard.
                    shared.fc_seen.store(false, Ordering::Relaxed);
                    next_streams = now;
                    shared.send_now(&status_text(
                        MavSeverity::MAV_SEVERITY_INFO,
                        "Kestrel: link up",
                    ));
                }
                Err(e) => {
                    tracing::debug!(url = %shared.cfg.url, error = %e, "mavlink connect failed");
                    bump(&shared.counters.reconnects);
                    next_connect = now + backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        match queue.recv_timeout(Duration::from_millis(20)) {
            Ok(msg) => {
                shared.send_now(&msg);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now >= next_beat {
            next_beat += Duration::from_secs(1);
            if next_beat < now {
                next_beat = now + Duration::from_secs(1);
            }
            beat(&shared, boot.elapsed().as_millis() as u32);
        }
        if now >= next_sync {
            next_sync = now + sync_period;
            let vehicle = shared.sysid.load(Ordering::Relaxed);
            shared.send_now(&timesync(0, monotonic_ns() as i64, vehicle, 1));
        }
        if shared.cfg.request_streams
            && shared.fc_seen.load(Ordering::Relaxed)
            && now >= next_streams
        {
            // Re-ask soon while the attitude stream is missing (FC rebooted, request lost).
            let streaming = lock(&shared.telemetry)
                .attitude_at(monotonic_ns())
                .is_some();
            next_streams = now + Duration::from_secs(if streaming { 10 } else { 2 });
            let vehicle = shared.sysid.load(Ordering::Relaxed);
            for (id, us) in STREAMS {
                shared.send_now(&set_message_interval(vehicle, id, us));
            }
        }
    }
    // What was queued before the stop still goes out (the last frame's DETS, a CRITICAL state
    // announced just before exiting); the queue is bounded, so this ends.
    if shared.is_up() {
        while let Ok(msg) = queue.try_recv() {
            shared.send_now(&msg);
        }
    }
}

fn beat(shared: &Shared, time_boot_ms: u32) {
    let state = match shared.state.load(Ordering::Relaxed) {
        4 => MavState::MAV_STATE_ACTIVE,
        5 => MavState::MAV_STATE_CRITICAL,
        _ => MavState::MAV_STATE_STANDBY,
    };
    shared.send_now(&heartbeat(state));
    let (n, fps, lat) = {
        let mut s = lock(&shared.stats);
        let v = (
            s.last_count as f32,
            s.frames_in_window as f32,
            s.last_latency_ms as f32,
        );
        s.frames_in_window = 0;
        v
    };
    shared.send_now(&named_value(time_boot_ms, "det_n", n));
    shared.send_now(&named_value(time_boot_ms, "fps", fps));
    shared.send_now(&named_value(time_boot_ms, "lat_ms", lat));
}
