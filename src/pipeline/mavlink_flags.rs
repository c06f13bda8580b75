//! The `[mavlink]` options of `kestrel run` as flags (flags win over the config file).

use crate::config::ConfigError;
use crate::publish::mavlink::MavlinkConfig;
use std::path::PathBuf;

/// One flag per `[mavlink]` key; the endpoint itself is `--mavlink URL`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct MavlinkFlags {
    /// [mavlink] sysid: vehicle system id (default: learnt from the autopilot's HEARTBEAT).
    #[arg(long = "mavlink-sysid")]
    pub sysid: Option<u8>,
    /// [mavlink] compid: our component id (191 = onboard computer).
    #[arg(long = "mavlink-compid")]
    pub compid: Option<u8>,
    /// [mavlink] gcs_sysid: the ground station's sysid, never used as ours.
    #[arg(long = "mavlink-gcs-sysid")]
    pub gcs_sysid: Option<u8>,
    /// [mavlink] dets_rate_hz: upper bound on per-frame messages.
    #[arg(long = "mavlink-dets-rate-hz")]
    pub dets_rate_hz: Option<f64>,
    /// [mavlink] class_priority: class ids, comma separated, best target first.
    #[arg(long = "mavlink-class-priority", value_delimiter = ',')]
    pub class_priority: Option<Vec<usize>>,
    /// [mavlink] landing_mode: send LANDING_TARGET (true/false).
    #[arg(long = "mavlink-landing-mode", value_name = "BOOL")]
    pub landing_mode: Option<bool>,
    /// [mavlink] signing_key_file: MAVLink 2 signing key.
    #[arg(long = "mavlink-signing-key-file")]
    pub signing_key_file: Option<PathBuf>,
    /// [mavlink] camera_calib: OpenCV FileStorage JSON intrinsics.
    #[arg(long = "mavlink-camera-calib")]
    pub camera_calib: Option<PathBuf>,
    /// [mavlink] mount_rpy_deg: roll,pitch,yaw of the camera mount in degrees.
    #[arg(
        long = "mavlink-mount-rpy-deg",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub mount_rpy_deg: Option<Vec<f64>>,
    /// [mavlink] queue_len: send queue bound (messages).
    #[arg(long = "mavlink-queue-len")]
    pub queue_len: Option<usize>,
    /// [mavlink] request_streams: ask the autopilot for streams (true/false).
    #[arg(long = "mavlink-request-streams", value_name = "BOOL")]
    pub request_streams: Option<bool>,
    /// [mavlink] timesync_period_s: interval of our TIMESYNC requests.
    #[arg(long = "mavlink-timesync-period-s")]
    pub timesync_period_s: Option<f64>,
}

fn set<T>(dst: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *dst = v;
    }
}

impl MavlinkFlags {
    /// Lays the given flags over `m`.
    ///
    /// # Errors
    /// `--mavlink-mount-rpy-deg` without exactly three angles.
    pub fn apply(&self, m: &mut MavlinkConfig) -> Result<(), ConfigError> {
        let f = self.clone();
        set(&mut m.sysid, f.sysid.map(Some));
        set(&mut m.compid, f.compid);
        set(&mut m.gcs_sysid, f.gcs_sysid);
        set(&mut m.dets_rate_hz, f.dets_rate_hz);
        set(&mut m.class_priority, f.class_priority);
        set(&mut m.landing_mode, f.landing_mode);
        set(&mut m.signing_key_file, f.signing_key_file.map(Some));
        set(&mut m.camera_calib, f.camera_calib.map(Some));
        set(&mut m.queue_len, f.queue_len);
        set(&mut m.request_streams, f.request_streams);
        set(&mut m.timesync_period_s, f.timesync_period_s);
        if let Some(v) = f.mount_rpy_deg {
            m.mount_rpy_deg =
                <[f64; 3]>::try_from(v.as_slice()).map_err(|_| ConfigError::Invalid {
                    key: "mavlink.mount_rpy_deg",
                    reason: format!("expected roll,pitch,yaw (3 numbers), got {v:?}"),
                })?;
        }
        Ok(())
    }
}

/// `[mavlink]` as a TOML table for `--print-config`. Destructures every field, so a new option
/// of the link fails to compile here until it is printed too.
pub fn mavlink_table(m: &MavlinkConfig) -> toml::Table {
    let MavlinkConfig {
        url: _,
        sysid,
        compid,
        gcs_sysid,
        dets_rate_hz,
        class_priority,
        landing_mode,
        signing_key_file,
        camera_calib,
        mount_rpy_deg,
        queue_len,
        request_streams,
        timesync_period_s,
    } = m;
    let mut t = toml::Table::new();
    let path = |p: &PathBuf| toml::Value::String(p.display().to_string());
    if let Some(s) = sysid {
        t.insert("sysid".into(), i64::from(*s).into());
    }
    t.insert("compid".into(), i64::from(*compid).into());
    t.insert("gcs_sysid".into(), i64::from(*gcs_sysid).into());
    t.insert("dets_rate_hz".into(), (*dets_rate_hz).into());
    let prio: Vec<toml::Value> = class_priority.iter().map(|c| (*c as i64).into()).collect();
    t.insert("class_priority".into(), prio.into());
    t.insert("landing_mode".into(), (*landing_mode).into());
    if let Some(p) = signing_key_file {
        t.insert("signing_key_file".into(), path(p));
    }
    if let Some(p) = camera_calib {
        t.insert("camera_calib".into(), path(p));
    }
    let rpy: Vec<toml::Value> = mount_rpy_deg.iter().map(|a| (*a).into()).collect();
    t.insert("mount_rpy_deg".into(), rpy.into());
    t.insert("queue_len".into(), (*queue_len as i64).into());
    t.insert("request_streams".into(), (*request_streams).into());
    t.insert("timesync_period_s".into(), (*timesync_period_s).into());
    t
}
