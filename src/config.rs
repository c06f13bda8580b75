//! One TOML file describing a `kestrel run`, mirrored by command-line flags (flags win).
//! `Default` is the embedded default: the real yolov3-tiny on the fetched sample photos,
//! replayed as a sequence, JSONL to stdout and MAVLink to a local UDP port.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Errors reading a config file, naming the file and the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("config: {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// With no `source`, the embedded demo: the sample photos looped at 5 fps for 10 frames
/// (unless `fps`, `loop` or `max_frames` say otherwise).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// `camera:N`, `replay:DIR`, `video:FILE` or `synthetic`; `None` = the fetched sample photos.
    pub source: Option<String>,
    /// Pace the source at this rate; `None` = as fast as possible (replay, video) / the camera's rate.
    pub fps: Option<f64>,
    #[serde(rename = "loop")]
    pub looped: bool,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Camera pixel format: `mjpeg` or `yuyv`.
    pub pixel_format: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Darknet cfg/weights/names; all absent = the fetched real yolov3-tiny (COCO).
    pub cfg: Option<PathBuf>,
    pub weights: Option<PathBuf>,
    pub names: Option<PathBuf>,
    /// Square network input size, multiple of 32 (default: the cfg's).
    pub size: Option<usize>,
    #[serde(serialize_with = "f32_as_written")]
    pub conf: Option<f32>,
    #[serde(serialize_with = "f32_as_written")]
    pub nms: Option<f32>,
    /// `cpu`, `cuda`, `cuda:N`.
    pub device: Option<String>,
    /// Conv precision: `f32`, `f16`, `q8`, `q4` (CPU), `bf16` (CUDA); absent = the model file's.
    pub precision: Option<String>,
    /// With `q8`: keep int8 activations between int8 convs, scales calibrated on the first
    /// frame (`--int8-chain`); absent = off.
    pub int8_chain: Option<bool>,
}

/// Prints an `f32` as its shortest decimal (0.45, not 0.44999998807907104).
fn f32_as_written<S: serde::Serializer>(v: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) => s.serialize_some(&format!("{x}").parse::<f64>().unwrap_or(f64::from(*x))),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// JSON Lines file, `-` = stdout, absent = none.
    pub jsonl: Option<String>,
    /// Annotated frames folder, every `save_every`-th frame.
    pub save_dir: Option<PathBuf>,
    pub save_every: u64,
    /// MAVLink endpoint (`udpout:HOST:PORT`, `serial:/dev/ttyX:BAUD`), absent = none.
    pub mavlink: Option<String>,
    /// Final summary as JSON.
    pub stats_json: Option<PathBuf>,
    /// Seconds between periodic stats lines.
    pub stats_every_s: f64,
    /// Slots in the publisher queue; beyond that, reports are dropped (counted), never blocking inference.
    pub publish_queue: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            jsonl: Some("-".into()),
            save_dir: None,
            save_every: 1,
            mavlink: Some("udpout:127.0.0.1:14550".into()),
            stats_json: None,
            stats_every_s: 5.0,
            publish_queue: 32,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_frames: Option<u64>,
    pub duration_s: Option<f64>,
}

/// The whole `kestrel run` configuration (see `kestrel.example.toml`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    pub model: ModelConfig,
    pub output: OutputConfig,
    pub limits: LimitsConfig,
    /// MAVLink link options (`[mavlink]`, see `publish::mavlink::MavlinkConfig`); its `url` is
    /// replaced by `output.mavlink`, which turns the link on or off. `--print-config` prints it
    /// through `pipeline::cli::print_config` (the type is not `Serialize`).
    #[serde(skip_serializing)]
    pub mavlink: crate::publish::mavlink::MavlinkConfig,
}

impl Config {
    /// # Errors
    /// Unreadable file, bad TOML, unknown keys (named with their line), invalid values.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.into(),
            source,
        })?;
        let c: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            reason: e.to_string(),
        })?;
        c.validate()?;
        Ok(c)
    }

    /// # Errors
    /// A value out of range, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.source.fps.is_some_and(|f| !(f > 0.0 && f.is_finite())) {
            return Err(ConfigError::Invalid {
                key: "source.fps",
                reason: "must be > 0".into(),
            });
        }
        if self
            .limits
            .duration_s
            .is_some_and(|d| !(d > 0.0 && d.is_finite()))
        {
            return Err(ConfigError::Invalid {
                key: "limits.duration_s",
                reason: "must be > 0".into(),
            });
        }
        if self.output.publish_queue == 0 {
            return Err(ConfigError::Invalid {
                key: "output.publish_queue",
                reason: "must be ≥ 1".into(),
            });
        }
        if self.output.stats_every_s.is_nan() || self.output.stats_every_s <= 0.0 {
            return Err(ConfigError::Invalid {
                key: "output.stats_every_s",
                reason: "must be > 0".into(),
            });
        }
        Ok(())
    }

    /// The config as TOML (`--print-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_unknown_keys_are_named() {
        let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("kestrel.example.toml");
        Config::load(&ex).unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.toml");
        std::fs::write(&p, "[source]\nfsp = 3\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("fsp") && e.contains("k.toml"), "{e}");
        std::fs::write(&p, "[source]\nfps = -1\n").unwrap();
        assert!(Config::load(&p)
            .unwrap_err()
            .to_string()
            .contains("source.fps"));
    }

    #[test]
    fn default_round_trips_through_toml() {
        let c = Config::default();
        assert_eq!(toml::from_str::<Config>(&c.to_toml()).unwrap(), c);
    }
}
