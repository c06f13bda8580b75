//! The one clock every timestamp in Kestrel uses: CLOCK_MONOTONIC in nanoseconds.
//!
//! V4L2 stamps camera buffers with CLOCK_MONOTONIC, the MAVLink TIMESYNC answers must come from
//! the same clock as the capture stamps (PX4 maps companion stamps through it), and
//! `std::time::Instant` exposes no absolute value — hence a thin wrapper over `clock_gettime`.

/// Nanoseconds of CLOCK_MONOTONIC (since boot, not counting suspend).
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_ns_never_goes_back_and_tracks_instant() {
        let a = monotonic_ns();
        let i = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = monotonic_ns();
        let elapsed = i.elapsed().as_nanos() as u64;
        assert!(b > a);
        assert!(
            (b - a).abs_diff(elapsed) < 5_000_000,
            "{} vs {}",
            b - a,
            elapsed
        );
    }
}
