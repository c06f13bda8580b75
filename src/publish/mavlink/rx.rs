//! Receive thread: parses everything, answers TIMESYNC at once, learns the vehicle id and keeps
//! the attitude/position history. Only TIMESYNC and telemetry from the vehicle are acted on.

use super::link::{bump, lock, Shared};
use super::messages::timesync;
use crate::clock::monotonic_ns;
use crate::geo::{Attitude, Position};
use mavlink::dialects::ardupilotmega::*;
use mavlink::error::MessageReadError;
use mavlink::MavConnection;
use mavlink::MavHeader;
use std::io::ErrorKind;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub fn run(shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(conn) = shared.current() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        match conn.try_recv() {
            Ok((hdr, msg)) => {
                bump(&shared.counters.received);
                handle(&shared, &hdr, &msg);
            }
            Err(MessageReadError::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                std::thread::sleep(Duration::from_micros(500));
            }
            Err(MessageReadError::Io(e)) => {
                tracing::debug!(error = %e, "mavlink read failed");
                shared.mark_down(&conn);
            }
            Err(_) => bump(&shared.counters.parse_errors),
        }
    }
}

fn is_vehicle(shared: &Shared, hdr: &MavHeader) -> bool {
    hdr.component_id == 1 && hdr.system_id == u32::from(shared.sysid.load(Ordering::Relaxed))
}

fn handle(shared: &Shared, hdr: &MavHeader, msg: &MavMessage) {
    match msg {
        MavMessage::TIMESYNC(t) => on_timesync(shared, hdr, t),
        MavMessage::HEARTBEAT(h) => on_heartbeat(shared, hdr, h),
        MavMessage::ATTITUDE(a) if is_vehicle(shared, hdr) => {
            let t = fc_time(shared, a.time_boot_ms);
            let att = Attitude {
                roll: f64::from(a.roll),
                pitch: f64::from(a.pitch),
                yaw: f64::from(a.yaw),
            };
            lock(&shared.telemetry).add_attitude(t, att);
        }
        MavMessage::GLOBAL_POSITION_INT(g) if is_vehicle(shared, hdr) => {
            let t = fc_time(shared, g.time_boot_ms);
            let pos = Position {
                lat_deg: f64::from(g.lat) * 1e-7,
                lon_deg: f64::from(g.lon) * 1e-7,
                alt_amsl_m: f64::from(g.alt) * 1e-3,
                height_agl_m: f64::from(g.relative_alt) * 1e-3,
            };
            lock(&shared.telemetry).add_position(t, pos);
        }
        MavMessage::DISTANCE_SENSOR(d)
            if hdr.system_id == u32::from(shared.sysid.load(Ordering::Relaxed))
                && d.orientation == MavSensorOrientation::MAV_SENSOR_ROTATION_PITCH_270 =>
        {
            let t = fc_time(shared, d.time_boot_ms);
            lock(&shared.telemetry).rangefinder_m =
                Some((t, f64::from(d.current_distance) / 100.0));
        }
        _ => {}
    }
}

/// FC boot time → companion clock through the TIMESYNC offset; arrival time until it is known.
fn fc_time(shared: &Shared, time_boot_ms: u32) -> u64 {
    lock(&shared.clock)
        .fc_ms_to_companion_ns(time_boot_ms)
        .unwrap_or_else(monotonic_ns)
}

fn on_timesync(shared: &Shared, hdr: &MavHeader, t: &TIMESYNC_DATA) {
    let now = monotonic_ns() as i64;
    if t.tc1 == 0 {
        let sys = u8::try_from(hdr.system_id).unwrap_or(0);
        if shared.send_now(&timesync(now, t.ts1, sys, hdr.component_id)) {
            bump(&shared.counters.timesync_answered);
        }
        return;
    }
    let ours = t.target_system == 0 || t.target_system == shared.sysid.load(Ordering::Relaxed);
    if ours && is_vehicle(shared, hdr) && t.ts1 > 0 && t.ts1 <= now {
        lock(&shared.clock).add_exchange(t.ts1, t.tc1, now);
    }
}

fn on_heartbeat(shared: &Shared, hdr: &MavHeader, h: &HEARTBEAT_DATA) {
    let cfg = &shared.cfg;
    let Ok(sys) = u8::try_from(hdr.system_id) else {
        return;
    };
    let autopilot = hdr.component_id == 1
        && h.autopilot != MavAutopilot::MAV_AUTOPILOT_INVALID
        && sys != 255
        && sys != 0
        && sys != cfg.gcs_sysid;
    if !autopilot {
        return;
    }
    if cfg.sysid.is_none() && shared.sysid.swap(sys, Ordering::Relaxed) != sys {
        tracing::info!(sysid = sys, "vehicle sysid learned from its HEARTBEAT");
    }
    if sys == shared.sysid.load(Ordering::Relaxed) && !shared.fc_seen.swap(true, Ordering::Relaxed)
    {
        tracing::info!(sysid = sys, "autopilot heartbeat received");
    }
}
