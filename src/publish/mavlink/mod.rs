//! MAVLink 2 link to the flight controller: a [`crate::publish::Sink`] that sends detections
//! (DEBUG_FLOAT_ARRAY "DETS"), the best target (CAMERA_TRACKING_*), optionally LANDING_TARGET,
//! a 1 Hz HEARTBEAT and NAMED_VALUE_FLOATs, and answers TIMESYNC. Scheme: docs/mavlink.md.

mod config;
mod error;
mod link;
pub mod messages;
mod rx;
mod sink;
mod telemetry;
mod tx;

pub use config::MavlinkConfig;
pub use error::MavlinkError;
pub use link::CountersSnapshot;
pub use sink::{KestrelState, MavlinkSink};
pub use telemetry::ClockOffset;
