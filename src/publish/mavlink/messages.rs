//! Builders of every message Kestrel sends. Pure functions of their inputs, so the layout
//! (docs/mavlink.md) is tested here and decoded by pymavlink in tests/mavlink_peer.rs.

use crate::detect::Detection;
use crate::geo::{GroundFix, TargetAngles};
use crate::publish::FrameReport;
use mavlink::dialects::ardupilotmega::*;

/// Detections per DEBUG_FLOAT_ARRAY: 1 + 9·6 = 55 of the 58 floats.
pub const DETS_PER_MESSAGE: usize = 9;

/// DEBUG_FLOAT_ARRAY "DETS" messages for one frame: array_id = seq (u16 wrap), time_usec =
/// capture time (µs, CLOCK_MONOTONIC), data[0] = n, then (class, score, x0, y0, x1, y1)
/// normalised; data[55..58] = image width, height, chunk index. At least one message.
pub fn dets_messages(report: &FrameReport) -> Vec<MavMessage> {
    let (w, h) = (report.width.max(1) as f32, report.height.max(1) as f32);
    let chunks: Vec<&[Detection]> = if report.detections.is_empty() {
        vec![&[]]
    } else {
        report.detections.chunks(DETS_PER_MESSAGE).collect()
    };
    chunks
        .into_iter()
        .enumerate()
        .map(|(chunk, dets)| {
            let mut data = [0f32; 58];
            data[0] = report.detections.len() as f32;
            for (k, d) in dets.iter().enumerate() {
                let b = &d.bbox;
                let v = [
                    d.class_id as f32,
                    d.score,
                    (b.x / w).clamp(0.0, 1.0),
                    (b.y / h).clamp(0.0, 1.0),
                    ((b.x + b.w) / w).clamp(0.0, 1.0),
                    ((b.y + b.h) / h).clamp(0.0, 1.0),
                ];
                data[1 + 6 * k..7 + 6 * k].copy_from_slice(&v);
            }
            data[55] = report.width as f32;
            data[56] = report.height as f32;
            data[57] = chunk as f32;
            MavMessage::DEBUG_FLOAT_ARRAY(DEBUG_FLOAT_ARRAY_DATA {
                time_usec: report.t_capture_ns / 1000,
                array_id: (report.seq & 0xffff) as u16,
                name: "DETS".into(),
                data,
            })
        })
        .collect()
}

/// The target to report: the first class of `priority` present (best score within it); with
/// an empty list or none of them present, the best score overall.
pub fn best_target<'a>(dets: &'a [Detection], priority: &[usize]) -> Option<&'a Detection> {
    let best_of = |pred: &dyn Fn(&Detection) -> bool| {
        dets.iter()
            .filter(|d| pred(d))
            .max_by(|a, b| a.score.total_cmp(&b.score))
    };
    priority
        .iter()
        .find_map(|c| best_of(&|d: &Detection| d.class_id == *c))
        .or_else(|| best_of(&|_| true))
}

pub fn tracking_image_status(d: &Detection, width: u32, height: u32) -> MavMessage {
    let (w, h) = (width.max(1) as f32, height.max(1) as f32);
    let b = &d.bbox;
    MavMessage::CAMERA_TRACKING_IMAGE_STATUS(CAMERA_TRACKING_IMAGE_STATUS_DATA {
        point_x: ((b.x + b.w / 2.0) / w).clamp(0.0, 1.0),
        point_y: ((b.y + b.h / 2.0) / h).clamp(0.0, 1.0),
        radius: f32::NAN,
        rec_top_x: (b.x / w).clamp(0.0, 1.0),
        rec_top_y: (b.y / h).clamp(0.0, 1.0),
        rec_bottom_x: ((b.x + b.w) / w).clamp(0.0, 1.0),
        rec_bottom_y: ((b.y + b.h) / h).clamp(0.0, 1.0),
        tracking_status: CameraTrackingStatusFlags::CAMERA_TRACKING_STATUS_FLAGS_ACTIVE,
        tracking_mode: CameraTrackingMode::CAMERA_TRACKING_MODE_RECTANGLE,
        target_data: CameraTrackingTargetData::CAMERA_TRACKING_TARGET_DATA_IN_STATUS,
        camera_device_id: 0,
    })
}

pub fn tracking_geo_status(fix: &GroundFix) -> MavMessage {
    MavMessage::CAMERA_TRACKING_GEO_STATUS(CAMERA_TRACKING_GEO_STATUS_DATA {
        lat: (fix.lat_deg * 1e7).round() as i32,
        lon: (fix.lon_deg * 1e7).round() as i32,
        alt: fix.alt_amsl_m as f32,
        h_acc: f32::NAN,
        v_acc: f32::NAN,
        vel_n: f32::NAN,
        vel_e: f32::NAN,
        vel_d: f32::NAN,
        vel_acc: f32::NAN,
        dist: fix.slant_m as f32,
        hdg: (fix.bearing_deg.to_radians()) as f32,
        hdg_acc: f32::NAN,
        tracking_status: CameraTrackingStatusFlags::CAMERA_TRACKING_STATUS_FLAGS_ACTIVE,
        camera_device_id: 0,
    })
}

/// ArduPilot precision landing: MAV_FRAME_BODY_FRD angles, position_valid = 0.
pub fn landing_target(t_capture_ns: u64, a: &TargetAngles, slant_m: Option<f64>) -> MavMessage {
    MavMessage::LANDING_TARGET(LANDING_TARGET_DATA {
        time_usec: t_capture_ns / 1000,
        angle_x: a.angle_x as f32,
        angle_y: a.angle_y as f32,
        distance: slant_m.unwrap_or(0.0) as f32,
        size_x: a.size_x as f32,
        size_y: a.size_y as f32,
        target_num: 0,
        frame: MavFrame::MAV_FRAME_BODY_FRD,
        mavtype: LandingTargetType::LANDING_TARGET_TYPE_VISION_OTHER,
        position_valid: MavBool::MAV_BOOL_FALSE,
        ..Default::default()
    })
}

pub fn heartbeat(state: MavState) -> MavMessage {
    MavMessage::HEARTBEAT(HEARTBEAT_DATA {
        custom_mode: 0,
        mavtype: MavType::MAV_TYPE_ONBOARD_CONTROLLER,
        autopilot: MavAutopilot::MAV_AUTOPILOT_INVALID,
        base_mode: MavModeFlag::empty(),
        system_status: state,
        mavlink_version: 3,
    })
}

pub fn named_value(time_boot_ms: u32, name: &str, value: f32) -> MavMessage {
    MavMessage::NAMED_VALUE_FLOAT(NAMED_VALUE_FLOAT_DATA {
        time_boot_ms,
        value,
        name: name.into(),
    })
}

pub fn status_text(severity: MavSeverity, text: &str) -> MavMessage {
    status_chunk(severity, &text.chars().take(50).collect::<String>(), 0, 0)
}

fn status_chunk(severity: MavSeverity, text: &str, id: u16, chunk_seq: u8) -> MavMessage {
    MavMessage::STATUSTEXT(STATUSTEXT_DATA {
        severity,
        text: text.into(),
        id,
        chunk_seq,
    })
}

/// A text of any length as MAVLink 2 STATUSTEXT chunks: one message when it fits in 50
/// characters, else chunks sharing a non-zero `id` with `chunk_seq` 0, 1, … (the last one shorter
/// than 50 or followed by an empty chunk, so the reader knows it is complete). At most 255 chunks.
pub fn status_texts(severity: MavSeverity, text: &str) -> Vec<MavMessage> {
    static NEXT_ID: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 50 {
        return vec![status_text(severity, text)];
    }
    let id = match NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
        0 => NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        v => v,
    };
    let mut out: Vec<MavMessage> = chars
        .chunks(50)
        .take(255)
        .enumerate()
        .map(|(i, c)| status_chunk(severity, &c.iter().collect::<String>(), id, i as u8))
        .collect();
    if chars.len().is_multiple_of(50) && out.len() < 255 {
        out.push(status_chunk(severity, "", id, out.len() as u8));
    }
    out
}

pub fn timesync(tc1: i64, ts1: i64, target_system: u8, target_component: u8) -> MavMessage {
    MavMessage::TIMESYNC(TIMESYNC_DATA {
        tc1,
        ts1,
        target_system,
        target_component,
    })
}

pub fn set_message_interval(target_system: u8, msg_id: u32, interval_us: f32) -> MavMessage {
    MavMessage::COMMAND_LONG(COMMAND_LONG_DATA {
        param1: msg_id as f32,
        param2: interval_us,
        command: MavCmd::MAV_CMD_SET_MESSAGE_INTERVAL,
        target_system,
        target_component: 1,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::BBox;

    fn det(class_id: usize, score: f32) -> Detection {
        Detection {
            class_id,
            score,
            bbox: BBox {
                x: 64.0,
                y: 48.0,
                w: 64.0,
                h: 96.0,
            },
        }
    }

    fn report(n: usize) -> FrameReport {
        FrameReport {
            seq: 70_000,
            t_capture_ns: 5_000_000_123,
            source_id: "t".into(),
            path: None,
            width: 640,
            height: 480,
            detections: (0..n).map(|i| det(i % 10, 0.5)).collect(),
            latency_ms: 1.0,
        }
    }

    #[test]
    fn dets_split_nine_per_message_with_the_same_array_id() {
        let msgs = dets_messages(&report(20));
        assert_eq!(msgs.len(), 3);
        for (i, m) in msgs.iter().enumerate() {
            let MavMessage::DEBUG_FLOAT_ARRAY(d) = m else {
                panic!("not DEBUG_FLOAT_ARRAY")
            };
            assert_eq!(d.array_id, (70_000 % 65_536) as u16);
            assert_eq!(d.time_usec, 5_000_000);
            assert_eq!((d.data[0], d.data[57]), (20.0, i as f32));
            assert_eq!(&d.data[3..7], &[0.1, 0.1, 0.2, 0.3]);
        }
        assert_eq!(dets_messages(&report(0)).len(), 1);
    }

    #[test]
    fn best_target_follows_class_priority() {
        let dets = vec![det(0, 0.9), det(3, 0.4), det(3, 0.6)];
        assert_eq!(best_target(&dets, &[3, 0]).unwrap().score, 0.6);
        assert_eq!(best_target(&dets, &[]).unwrap().score, 0.9);
        assert_eq!(best_target(&dets, &[7]).unwrap().score, 0.9);
        assert!(best_target(&[], &[]).is_none());
    }

    fn chunks(msgs: &[MavMessage]) -> Vec<(u16, u8, String)> {
        msgs.iter()
            .map(|m| match m {
                MavMessage::STATUSTEXT(t) => (t.id, t.chunk_seq, t.text.to_str().unwrap().into()),
                _ => panic!("not STATUSTEXT"),
            })
            .collect()
    }

    #[test]
    fn long_status_texts_go_as_chunks_sharing_an_id() {
        let sev = MavSeverity::MAV_SEVERITY_CRITICAL;
        assert_eq!(
            chunks(&status_texts(sev, "short")),
            [(0, 0, "short".into())]
        );
        let long: String = (0..120)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let c = chunks(&status_texts(sev, &long));
        assert_eq!(c.len(), 3);
        assert!(c[0].0 != 0 && c.iter().all(|x| x.0 == c[0].0));
        assert_eq!(c.iter().map(|x| x.1).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(c.iter().map(|x| x.2.as_str()).collect::<String>(), long);
        // exactly 100 characters: an empty third chunk marks the end
        let c = chunks(&status_texts(sev, &long[..100]));
        assert_eq!((c.len(), c[2].2.as_str()), (3, ""));
        assert_ne!(chunks(&status_texts(sev, &long))[0].0, c[0].0, "ids differ");
    }
}
