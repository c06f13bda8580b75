//! `[mavlink]` table of the Kestrel config (and `kestrel run --mavlink URL`).

use super::MavlinkError;
use serde::Deserialize;
use std::path::PathBuf;

/// Every option of the MAVLink link. Defaults suit a companion on TELEM2 at 921600 baud.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MavlinkConfig {
    /// `serial:/dev/ttyTHS1:921600`, `udpout:host:port`, `udpin:addr:port`, `tcpout:host:port`.
    pub url: String,
    /// Vehicle system id; `None` = learn it from the autopilot's HEARTBEAT (1 until then).
    pub sysid: Option<u8>,
    /// Our component id: 191 = MAV_COMP_ID_ONBOARD_COMPUTER.
    pub compid: u8,
    /// The ground station's sysid (SYSID_MYGCS / MAV_GCS_SYSID): never used as ours.
    pub gcs_sysid: u8,
    /// Upper bound on per-frame messages (DETS, tracking, landing target), Hz.
    pub dets_rate_hz: f64,
    /// Best target = first class of this list present (highest score within it); empty = any.
    pub class_priority: Vec<usize>,
    /// Send LANDING_TARGET for the best target (ArduPilot precision landing steers onto it!).
    pub landing_mode: bool,
    /// MAVLink 2 signing key: 64 hex characters or 32 raw bytes; `None` = unsigned.
    pub signing_key_file: Option<PathBuf>,
    /// OpenCV FileStorage JSON intrinsics (calib/); without it no geo-projection.
    pub camera_calib: Option<PathBuf>,
    /// Camera mount rotation (roll, pitch, yaw) in degrees, relative to a down-looking camera
    /// with the image top towards the nose.
    pub mount_rpy_deg: [f64; 3],
    /// Bound of the send queue (messages); beyond it messages are dropped and counted.
    pub queue_len: usize,
    /// Request streams with MAV_CMD_SET_MESSAGE_INTERVAL.
    pub request_streams: bool,
    /// Interval of the TIMESYNC requests we send, seconds.
    pub timesync_period_s: f64,
}

impl Default for MavlinkConfig {
    fn default() -> Self {
        Self {
            url: "serial:/dev/ttyTHS1:921600".into(),
            sysid: None,
            compid: 191,
            gcs_sysid: 255,
            dets_rate_hz: 10.0,
            class_priority: Vec::new(),
            landing_mode: false,
            signing_key_file: None,
            camera_calib: None,
            mount_rpy_deg: [0.0; 3],
            queue_len: 256,
            request_streams: true,
            timesync_period_s: 1.0,
        }
    }
}

impl MavlinkConfig {
    /// Rejects values that would make the companion look like a GCS or flood the link.
    pub fn validate(&self) -> Result<(), MavlinkError> {
        let bad = |field, reason: &str| {
            Err(MavlinkError::Config {
                field,
                reason: reason.into(),
            })
        };
        if let Some(id) = self.sysid {
            if id == 0 || id == 255 || id == self.gcs_sysid {
                return bad("sysid", "0, 255 and the GCS sysid are not allowed");
            }
        }
        if self.compid == 0 {
            return bad("compid", "0 is MAV_COMP_ID_ALL");
        }
        if !(self.dets_rate_hz > 0.0 && self.dets_rate_hz.is_finite()) {
            return bad("dets_rate_hz", "must be a positive number");
        }
        if self.queue_len == 0 {
            return bad("queue_len", "must be at least 1");
        }
        if self.timesync_period_s.is_nan() || self.timesync_period_s <= 0.0 {
            return bad("timesync_period_s", "must be positive");
        }
        let proto = self.url.split(':').next().unwrap_or("");
        if !["serial", "udpout", "udpin", "udpbcast", "tcpout", "tcpin"].contains(&proto)
            || self.url.split(':').count() < 3
        {
            return bad(
                "url",
                "expected serial:PORT:BAUD, udpout:HOST:PORT, udpin:ADDR:PORT or tcpout:HOST:PORT",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_table_fills_defaults() {
        let c: MavlinkConfig =
            toml::from_str("url = \"udpout:127.0.0.1:14550\"\nsysid = 3").unwrap();
        assert_eq!(c.sysid, Some(3));
        assert_eq!(c.compid, 191);
        c.validate().unwrap();
    }

    #[test]
    fn gcs_sysid_and_bad_url_are_refused() {
        let c = MavlinkConfig {
            sysid: Some(255),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("sysid"));
        let c = MavlinkConfig {
            url: "udp:1.2.3.4".into(),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("url"));
        assert!(toml::from_str::<MavlinkConfig>("urll = \"x\"").is_err());
    }
}
