//! Fast Rust-only check of the link with an in-process fake flight controller (the `mavlink`
//! crate on udpin): sysid learning (never the GCS's 255), TIMESYNC answers, DETS decoding.

mod common;
mod mavlink_support;

use kestrel::clock::monotonic_ns;
use kestrel::publish::mavlink::{MavlinkConfig, MavlinkSink};
use kestrel::publish::Sink;
use mavlink::dialects::ardupilotmega::*;
use mavlink::{MavConnection, MavHeader};
use std::time::{Duration, Instant};

fn fc_heartbeat(fc: &impl MavConnection<MavMessage>, sysid: u32) {
    let hdr = MavHeader {
        system_id: sysid,
        component_id: 1,
        sequence: 0,
    };
    let hb = MavMessage::HEARTBEAT(HEARTBEAT_DATA {
        mavtype: MavType::MAV_TYPE_QUADROTOR,
        autopilot: MavAutopilot::MAV_AUTOPILOT_ARDUPILOTMEGA,
        system_status: MavState::MAV_STATE_ACTIVE,
        mavlink_version: 3,
        ..Default::default()
    });
    fc.send(&hdr, &hb).unwrap();
}

#[test]
fn in_process_fc_sees_identity_timesync_answers_and_dets() {
    let port = mavlink_support::free_udp_port();
    let fc = mavlink::UdpConfig::new(format!("127.0.0.1:{port}"), mavlink::UdpMode::Udpin)
        .read_timeout(Duration::from_millis(50));
    let fc = mavlink::Connectable::connect::<MavMessage>(&fc).unwrap();
    let cfg = MavlinkConfig {
        url: format!("udpout:127.0.0.1:{port}"),
        ..Default::default()
    };
    let mut sink = MavlinkSink::start(&cfg).unwrap();

    let mut learned_gcs = false;
    let mut timesync_ok = None;
    let mut dets = None;
    let mut heartbeat_from = None;
    let t0 = Instant::now();
    let mut seq = 0;
    while t0.elapsed() < Duration::from_secs(4) && (timesync_ok.is_none() || dets.is_none()) {
        if let Ok((hdr, msg)) = fc.recv() {
            // Now the sink's address is known to the udpin side: speak as a GCS, then as the FC.
            fc_heartbeat(&fc, 255);
            std::thread::sleep(Duration::from_millis(20));
            learned_gcs |= sink.vehicle_sysid() == 255;
            fc_heartbeat(&fc, 7);
            let hdr7 = MavHeader {
                system_id: 7,
                component_id: 1,
                sequence: 0,
            };
            let ts1 = 123_456_789;
            fc.send(
                &hdr7,
                &MavMessage::TIMESYNC(TIMESYNC_DATA {
                    tc1: 0,
                    ts1,
                    ..Default::default()
                }),
            )
            .unwrap();
            match msg {
                MavMessage::HEARTBEAT(h) => {
                    heartbeat_from = Some((hdr.system_id, hdr.component_id, h.mavtype))
                }
                MavMessage::TIMESYNC(t) if t.ts1 == ts1 && t.tc1 > 0 => {
                    timesync_ok = Some(t.target_system)
                }
                MavMessage::DEBUG_FLOAT_ARRAY(d) if hdr.system_id == 7 && d.data[0] > 0.0 => {
                    dets = Some(d)
                }
                _ => {}
            }
        }
        if sink.vehicle_sysid() == 7 {
            sink.publish(&mavlink_support::report(seq % 13 + 1, monotonic_ns()))
                .unwrap();
            seq += 1;
        }
    }
    assert!(!learned_gcs, "the GCS sysid must never be adopted");
    assert_eq!(sink.vehicle_sysid(), 7);
    let (_, comp, ty) = heartbeat_from.expect("no HEARTBEAT");
    assert_eq!((comp, ty), (191, MavType::MAV_TYPE_ONBOARD_CONTROLLER));
    assert_eq!(timesync_ok, Some(7), "TIMESYNC answered to the FC");
    let d = dets.expect("no DETS");
    assert_eq!(d.name.to_str().unwrap(), "DETS");
    let r = mavlink_support::report(u64::from(d.array_id), 0);
    assert_eq!(d.data[0] as usize, r.detections.len());
    assert_eq!(
        &d.data[1..7],
        mavlink_support::expected_dets(&r)[0].as_slice()
    );
}
