//! What the receive thread learns from the flight controller, shared with the sink: attitude
//! and position history on the companion's monotonic clock, the FC clock offset, the vehicle id.

use crate::geo::{Attitude, Position};
use std::collections::VecDeque;

const HISTORY: usize = 256;
/// Samples further than this from a capture time are not used (ns).
const MAX_GAP_NS: u64 = 250_000_000;

/// FC clock offset from our own TIMESYNC exchanges: `fc_ns − companion_ns`, smoothed.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClockOffset {
    pub offset_ns: Option<i64>,
    pub samples: u64,
    pub rejected: u64,
    pub last_rtt_ns: u64,
}

impl ClockOffset {
    /// One exchange: `ts1` our send time, `tc1` the FC's time, `now` our receive time (ns).
    /// RTT over 10 ms is rejected (PX4's rule); the rest is smoothed (EMA, α = 0.1).
    pub fn add_exchange(&mut self, ts1: i64, tc1: i64, now: i64) {
        let rtt = now - ts1;
        if !(0..=10_000_000).contains(&rtt) {
            self.rejected += 1;
            return;
        }
        let sample = tc1 + rtt / 2 - now;
        // A jump of more than 50 ms is an FC reboot (or clock step), not jitter: start over.
        if self
            .offset_ns
            .is_some_and(|o| (sample - o).abs() > 50_000_000)
        {
            self.offset_ns = None;
            self.samples = 0;
        }
        self.offset_ns = Some(match self.offset_ns {
            Some(o) if self.samples >= 5 => o + (sample - o) / 10,
            Some(o) => (o + sample) / 2,
            None => sample,
        });
        self.samples += 1;
        self.last_rtt_ns = rtt as u64;
    }

    /// FC boot time in ms → companion monotonic ns, when the offset is known.
    pub fn fc_ms_to_companion_ns(&self, time_boot_ms: u32) -> Option<u64> {
        let o = self.offset_ns?;
        u64::try_from(i64::from(time_boot_ms) * 1_000_000 - o).ok()
    }
}

/// Attitude and position samples stamped on the companion clock.
#[derive(Debug, Default)]
pub struct Telemetry {
    attitude: VecDeque<(u64, Attitude)>,
    position: VecDeque<(u64, Position)>,
    pub rangefinder_m: Option<(u64, f64)>,
}

fn push<T>(q: &mut VecDeque<(u64, T)>, t: u64, v: T) {
    // An FC reboot (time going back) invalidates the history.
    if q.back().is_some_and(|(last, _)| *last > t + MAX_GAP_NS) {
        q.clear();
    }
    if q.len() == HISTORY {
        q.pop_front();
    }
    q.push_back((t, v));
}

fn lerp_angle(a: f64, b: f64, f: f64) -> f64 {
    let d = (b - a + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI;
    a + d * f
}

impl Telemetry {
    pub fn add_attitude(&mut self, t_ns: u64, a: Attitude) {
        push(&mut self.attitude, t_ns, a);
    }

    pub fn add_position(&mut self, t_ns: u64, p: Position) {
        push(&mut self.position, t_ns, p);
    }

    /// Attitude at `t_ns`, linearly interpolated (angles on the shortest arc); `None` when no
    /// sample lies within 250 ms.
    pub fn attitude_at(&self, t_ns: u64) -> Option<Attitude> {
        let after = self.attitude.iter().position(|(t, _)| *t >= t_ns);
        match after {
            Some(0) => {
                let (t, a) = self.attitude.front()?;
                (t - t_ns <= MAX_GAP_NS).then_some(*a)
            }
            Some(i) => {
                let (t0, a0) = self.attitude[i - 1];
                let (t1, a1) = self.attitude[i];
                let f = if t1 > t0 {
                    (t_ns - t0) as f64 / (t1 - t0) as f64
                } else {
                    0.0
                };
                Some(Attitude {
                    roll: lerp_angle(a0.roll, a1.roll, f),
                    pitch: lerp_angle(a0.pitch, a1.pitch, f),
                    yaw: lerp_angle(a0.yaw, a1.yaw, f),
                })
            }
            None => {
                let (t, a) = self.attitude.back()?;
                (t_ns - t <= MAX_GAP_NS).then_some(*a)
            }
        }
    }

    /// Nearest position sample within 1 s, with the rangefinder height when it is fresh.
    pub fn position_at(&self, t_ns: u64) -> Option<Position> {
        let (t, p) = self.position.iter().min_by_key(|(t, _)| t.abs_diff(t_ns))?;
        if t.abs_diff(t_ns) > 1_000_000_000 {
            return None;
        }
        let mut p = *p;
        if let Some((tr, h)) = self.rangefinder_m {
            if tr.abs_diff(t_ns) < 500_000_000 {
                p.height_agl_m = h;
            }
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attitude_interpolates_across_the_yaw_wrap() {
        let mut t = Telemetry::default();
        let yaw = |d: f64| Attitude {
            yaw: d.to_radians(),
            ..Default::default()
        };
        t.add_attitude(1_000_000_000, yaw(170.0));
        t.add_attitude(1_100_000_000, yaw(-170.0));
        let a = t.attitude_at(1_050_000_000).unwrap();
        assert!(
            (a.yaw.to_degrees().abs() - 180.0).abs() < 1e-6,
            "{}",
            a.yaw.to_degrees()
        );
        assert!(t.attitude_at(2_000_000_000).is_none());
    }

    #[test]
    fn timesync_rejects_slow_exchanges_and_estimates_offset() {
        let mut c = ClockOffset::default();
        c.add_exchange(1_000, 5_000_000_000, 50_000_000);
        assert_eq!(c.rejected, 1);
        c.add_exchange(0, 5_000_001_000, 2_000);
        assert_eq!(c.offset_ns, Some(5_000_000_000));
        c.add_exchange(10_000, 1_000_000, 12_000);
        assert_eq!(
            c.offset_ns,
            Some(1_000_000 + 1_000 - 12_000),
            "an FC reboot resets"
        );
    }
}
