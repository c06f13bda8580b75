//! Shared helpers for the end-to-end tests: where the real assets, the Python peers and the
//! `kestrel` binary are. A missing peer or asset fails the test with the command that fixes it;
//! nothing is skipped silently.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Folder with the real assets (scripts/fetch-assets.sh); `KESTREL_ASSETS` overrides.
pub fn assets_dir() -> PathBuf {
    let dir = std::env::var_os("KESTREL_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("assets"));
    assert!(
        dir.join("yolov3-tiny.weights").is_file(),
        "real assets missing in {}: run scripts/fetch-assets.sh (or scripts/setup.sh)",
        dir.display()
    );
    dir
}

pub fn asset(name: &str) -> PathBuf {
    assets_dir().join(name)
}

/// A cfg file committed under models/cfg/.
pub fn cfg(name: &str) -> PathBuf {
    repo_root().join("models/cfg").join(name)
}

/// The Python interpreter that has the peers (OpenCV, pycocotools, pymavlink).
pub fn python() -> PathBuf {
    let py = std::env::var_os("KESTREL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        py.is_file(),
        "Python peers missing ({}): run scripts/setup.sh",
        py.display()
    );
    py
}

/// Runs a Python script from tests/peers/ with arguments; panics with its stderr on failure.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let path = repo_root().join("tests/peers").join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `kestrel` binary built for this test run.
pub fn kestrel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kestrel"))
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}
