//! The connection and everything the sink's threads share. The link may be down at any time:
//! sending then counts the message as unsent and the transmit thread reconnects with backoff.

use super::telemetry::{ClockOffset, Telemetry};
use super::MavlinkConfig;
use mavlink::dialects::ardupilotmega::MavMessage;
use mavlink::{MavConnection, MavHeader, MavlinkVersion};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub type Conn = mavlink::Connection<MavMessage>;

/// Message counters, readable at any time for stats.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub unsent: AtomicU64,
    pub capped_frames: AtomicU64,
    pub received: AtomicU64,
    pub parse_errors: AtomicU64,
    pub timesync_answered: AtomicU64,
    pub reconnects: AtomicU64,
}

/// A copy of [`Counters`] at one instant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CountersSnapshot {
    /// Messages written to the link.
    pub sent: u64,
    /// Messages refused because the send queue was full.
    pub dropped: u64,
    /// Messages lost because the link was down or the write failed.
    pub unsent: u64,
    /// Frames whose per-frame messages the rate cap skipped.
    pub capped_frames: u64,
    pub received: u64,
    pub parse_errors: u64,
    pub timesync_answered: u64,
    pub reconnects: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CountersSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CountersSnapshot {
            sent: g(&self.sent),
            dropped: g(&self.dropped),
            unsent: g(&self.unsent),
            capped_frames: g(&self.capped_frames),
            received: g(&self.received),
            parse_errors: g(&self.parse_errors),
            timesync_answered: g(&self.timesync_answered),
            reconnects: g(&self.reconnects),
        }
    }
}

pub fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// Per-frame numbers for the 1 Hz NAMED_VALUE_FLOATs.
#[derive(Debug, Default)]
pub struct FrameStats {
    pub last_count: usize,
    pub last_latency_ms: f64,
    pub frames_in_window: u32,
}

pub struct Shared {
    pub cfg: MavlinkConfig,
    pub signing_key: Option<[u8; 32]>,
    conn: Mutex<Option<Arc<Conn>>>,
    pub stop: AtomicBool,
    /// MavState as u8 (STANDBY 3, ACTIVE 4, CRITICAL 5).
    pub state: AtomicU8,
    pub sysid: AtomicU8,
    pub fc_seen: AtomicBool,
    pub counters: Counters,
    pub telemetry: Mutex<Telemetry>,
    pub clock: Mutex<ClockOffset>,
    pub stats: Mutex<FrameStats>,
}

/// Locks a mutex, recovering the data if a thread panicked while holding it (the data are
/// plain numbers, always consistent).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(cfg: MavlinkConfig, signing_key: Option<[u8; 32]>) -> Self {
        let sysid = cfg.sysid.unwrap_or(1);
        Self {
            cfg,
            signing_key,
            conn: Mutex::new(None),
            stop: AtomicBool::new(false),
            state: AtomicU8::new(3),
            sysid: AtomicU8::new(sysid),
            fc_seen: AtomicBool::new(false),
            counters: Counters::default(),
            telemetry: Mutex::new(Telemetry::default()),
            clock: Mutex::new(ClockOffset::default()),
            stats: Mutex::new(FrameStats::default()),
        }
    }

    pub fn current(&self) -> Option<Arc<Conn>> {
        lock(&self.conn).clone()
    }

    pub fn is_up(&self) -> bool {
        lock(&self.conn).is_some()
    }

    /// Forgets `conn` (if it is still the current one) so the transmit thread reconnects.
    pub fn mark_down(&self, conn: &Arc<Conn>) {
        let mut cur = lock(&self.conn);
        if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            tracing::warn!(url = %self.cfg.url, "mavlink link down; reconnecting");
            *cur = None;
        }
    }

    /// Opens the link (MAVLink 2 only, signing when configured) and makes it current.
    pub fn connect(&self) -> std::io::Result<()> {
        let mut conn: Conn = mavlink::connect(&self.cfg.url)?;
        conn.set_protocol_version(MavlinkVersion::V2);
        conn.set_allow_recv_any_version(true);
        if let Some(key) = self.signing_key {
            conn.setup_signing(Some(mavlink::SigningConfig::new(key, 0, true, false)));
        }
        *lock(&self.conn) = Some(Arc::new(conn));
        Ok(())
    }

    pub fn header(&self) -> MavHeader {
        MavHeader {
            system_id: u32::from(self.sysid.load(Ordering::Relaxed)),
            component_id: self.cfg.compid,
            sequence: 0,
        }
    }

    /// Writes one message now; a down link or a failed write is counted, never returned.
    pub fn send_now(&self, msg: &MavMessage) -> bool {
        let Some(conn) = self.current() else {
            bump(&self.counters.unsent);
            return false;
        };
        match conn.send(&self.header(), msg) {
            Ok(n) if n > 0 => {
                bump(&self.counters.sent);
                true
            }
            // udpin before any peer spoke: the crate drops the message.
            Ok(_) => {
                bump(&self.counters.unsent);
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "mavlink send failed");
                bump(&self.counters.unsent);
                self.mark_down(&conn);
                false
            }
        }
    }
}
