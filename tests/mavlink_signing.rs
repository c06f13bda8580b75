//! MAVLink 2 signing through `kestrel run` (`[mavlink] signing_key_file`), checked by pymavlink's
//! own signature verification (tests/peers/fake_fc.py --signing-key): a peer with the key accepts
//! every message and gets its TIMESYNC requests answered; a peer with another key rejects every
//! message; an unsigned peer's requests are not acted on.

mod common;
mod mavlink_support;
use common::*;
use mavlink_support::{free_udp_port, peer_result, spawn_peer};
use serde_json::Value;
use std::path::Path;

use std::time::Duration;

fn key_hex(seed: u8) -> String {
    (0..32u8)
        .map(|i| format!("{:02x}", i.wrapping_mul(37).wrapping_add(seed)))
        .collect()
}

/// One `kestrel run` signing with `key_file`, against a peer holding `peer_key` (None: unsigned).
fn session(dir: &Path, key_file: &Path, peer_key: Option<&str>, tag: &str) -> Value {
    let port = free_udp_port();
    let key_args: Vec<&str> = peer_key.map_or(vec![], |k| vec!["--signing-key", k]);
    let peer = spawn_peer(&format!("udpin:127.0.0.1:{port}"), 8.0, &key_args);
    std::thread::sleep(Duration::from_millis(800));
    let config = dir.join(format!("{tag}.toml"));
    std::fs::write(
        &config,
        format!("[mavlink]\nsigning_key_file = \"{}\"\n", key_file.display()),
    )
    .unwrap();
    let run = kestrel()
        .args(["run", "--config", path_str(&config)])
        .args(["--source", "synthetic", "--fps", "2", "--duration", "4"])
        .arg("--mavlink")
        .arg(format!("udpout:127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{tag}: kestrel run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v = peer_result(peer);
    println!(
        "{tag}: counts {} signing {} bad_data {}",
        v["counts"], v["signing"], v["bad_data"]
    );
    v
}

#[test]
fn signed_link_is_verified_by_pymavlink_and_ignores_unsigned_requests() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_hex(7);
    let key_file = dir.path().join("link.key");
    std::fs::write(&key_file, &key).unwrap();
    let (d, k) = (dir.path(), key_file.as_path());
    let (same, other, unsigned) = std::thread::scope(|s| {
        let a = s.spawn(|| session(d, k, Some(&key), "same-key"));
        let b = s.spawn(|| session(d, k, Some(&key_hex(99)), "other-key"));
        let c = s.spawn(|| session(d, k, None, "unsigned-peer"));
        (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
    });

    // Same key: everything Kestrel sends carries a valid signature.
    let hb = same["counts"]["HEARTBEAT"].as_u64().unwrap_or(0);
    assert!(hb >= 3, "same key: heartbeats {hb}");
    assert_eq!(same["bad_data"], 0, "same key: rejected frames");
    assert_eq!(same["signing"]["bad"], 0);
    let good = same["signing"]["good"].as_u64().unwrap();
    let total: u64 = same["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        good >= total && total > 0,
        "unsigned messages slipped through: {same}"
    );
    assert!(
        !same["timesync_delay_ms"].as_array().unwrap().is_empty(),
        "signed TIMESYNC requests are answered"
    );

    // Another key: pymavlink rejects every message (bad signature), nothing decodes.
    assert!(other["counts"].as_object().unwrap().is_empty(), "{other}");
    assert!(other["signing"]["bad"].as_u64().unwrap() >= 3, "{other}");

    // An unsigned peer sees signed messages but its requests are not acted on.
    assert!(unsigned["signing"]["signed_seen"].as_u64().unwrap() >= 3);
    assert!(
        unsigned["timesync_delay_ms"].as_array().unwrap().is_empty(),
        "unsigned TIMESYNC requests were answered: {unsigned}"
    );
}
