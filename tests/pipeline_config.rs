//! `kestrel run --config kestrel.example.toml --print-config`: the example parses, every section
//! (with [mavlink]) is printed with the file's values, every key is also a flag, and flags win.

mod common;
use common::*;
use toml::{Table, Value};

fn print_config(extra: &[&str]) -> Table {
    let ex = repo_root().join("kestrel.example.toml");
    let out = kestrel()
        .args(["run", "--config", path_str(&ex), "--print-config"])
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_success(&out);
    text.parse()
        .unwrap_or_else(|e| panic!("printed config is TOML: {e}\n{text}"))
}

fn example() -> Table {
    std::fs::read_to_string(repo_root().join("kestrel.example.toml"))
        .unwrap()
        .parse()
        .expect("example is TOML")
}

/// The flag that sets `[section] key`.
fn flag(section: &str, key: &str) -> String {
    let renamed = match (section, key) {
        ("source", "source") => "source",
        ("output", "stats_every_s") => "stats-every",
        ("limits", "duration_s") => "duration",
        _ => "",
    };
    match (renamed, section) {
        ("", "mavlink") => format!("--mavlink-{}", key.replace('_', "-")),
        ("", _) => format!("--{}", key.replace('_', "-")),
        (r, _) => format!("--{r}"),
    }
}

#[test]
fn example_config_is_printed_whole_with_its_values() {
    let (ex, printed) = (example(), print_config(&[]));
    for section in ["source", "model", "output", "limits", "mavlink"] {
        let (e, p) = (ex[section].as_table().unwrap(), printed.get(section));
        let p = p
            .and_then(Value::as_table)
            .unwrap_or_else(|| panic!("[{section}] printed"));
        for (k, v) in e {
            assert_eq!(p.get(k), Some(v), "[{section}] {k}: example vs printed");
        }
    }
}

#[test]
fn every_printed_key_is_a_flag_and_flags_win() {
    let help = kestrel().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for (section, t) in print_config(&[]) {
        for key in t.as_table().unwrap().keys() {
            let f = flag(&section, key);
            assert!(
                help.contains(&format!("{f} ")) || help.contains(&format!("{f}\n")),
                "[{section}] {key}: no {f} in run --help"
            );
        }
    }
    let p = print_config(&[
        "--fps",
        "7",
        "--size",
        "320",
        "--jsonl",
        "other.jsonl",
        "--max-frames",
        "5",
        "--mavlink-compid",
        "200",
        "--mavlink-mount-rpy-deg=0,-90,5",
        "--mavlink-landing-mode",
        "true",
        "--int8-chain",
    ]);
    assert_eq!(p["source"]["fps"].as_float(), Some(7.0));
    assert_eq!(
        p["source"]["source"].as_str(),
        Some("synthetic"),
        "unflagged keys keep the file's value"
    );
    assert_eq!(p["model"]["size"].as_integer(), Some(320));
    assert_eq!(p["model"]["int8_chain"].as_bool(), Some(true));
    assert_eq!(p["output"]["jsonl"].as_str(), Some("other.jsonl"));
    assert_eq!(p["limits"]["max_frames"].as_integer(), Some(5));
    assert_eq!(p["mavlink"]["compid"].as_integer(), Some(200));
    assert_eq!(p["mavlink"]["dets_rate_hz"].as_float(), Some(10.0));
    assert_eq!(p["mavlink"]["landing_mode"].as_bool(), Some(true));
    let rpy: Vec<f64> = p["mavlink"]["mount_rpy_deg"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_float().unwrap())
        .collect();
    assert_eq!(rpy, [0.0, -90.0, 5.0]);
}

#[test]
fn bad_flag_values_are_named() {
    let ex = repo_root().join("kestrel.example.toml");
    let out = kestrel()
        .args([
            "run",
            "--config",
            path_str(&ex),
            "--print-config",
            "--mavlink-mount-rpy-deg",
            "1,2",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("mount_rpy_deg"),
        "{err}"
    );
}
