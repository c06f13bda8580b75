//! Builds the detector `run` uses from the config's `[model]` table: the embedded default is the
//! real yolov3-tiny fetched on first use (scripts/fetch-assets.sh), so a fresh machine shows real
//! detections with no files to find.

use crate::detect::cli::{assets_dir, load_model, parse_device};
use crate::detect::{load_names, DetectError, DetectOptions, Detector, ResizeMode};
use std::path::{Path, PathBuf};

/// What `run` needs to build its detector (mirrors the `[model]` table).
#[derive(Debug, Clone, Default)]
pub struct ModelArgs {
    pub cfg: Option<PathBuf>,
    pub weights: Option<PathBuf>,
    pub names: Option<PathBuf>,
    pub size: Option<usize>,
    pub conf: f32,
    pub nms: f32,
    pub device: String,
    /// Conv precision name: f32, f16, bf16, q8, q4 (None: the model file's own, f32 for
    /// `.weights`).
    pub precision: Option<String>,
    /// Int8 activations kept between int8 convs (see `detect::cli::ModelArgs::int8_chain`).
    pub int8_chain: bool,
}

const ASSETS: [&str; 5] = [
    "yolov3-tiny.cfg",
    "yolov3-tiny.weights",
    "coco.names",
    "bus.jpg",
    "zidane.jpg",
];

/// The real assets folder, fetched with the project's script when missing.
///
/// # Errors
/// Assets missing and not fetchable.
pub fn default_assets() -> Result<PathBuf, DetectError> {
    let dir = assets_dir();
    let ready = |d: &Path| ASSETS.iter().all(|f| d.join(f).is_file());
    if !ready(&dir) {
        let script = Path::new("scripts/fetch-assets.sh");
        if script.is_file() {
            tracing::info!(
                "fetching the real assets (yolov3-tiny, sample photos) into {}",
                dir.display()
            );
            let _ = std::process::Command::new("bash")
                .arg(script)
                .arg(&dir)
                .status();
        }
    }
    if ready(&dir) {
        Ok(dir)
    } else {
        Err(DetectError::MissingAssets { path: dir })
    }
}

/// Loads the model and class names; both cfg and weights, or neither (the embedded default).
///
/// # Errors
/// Bad files or options.
pub fn build_detector(m: &ModelArgs) -> Result<(Detector, Vec<String>), DetectError> {
    let (cfg, weights, names) = match (&m.cfg, &m.weights) {
        (cfg, Some(w)) => (cfg.clone(), w.clone(), m.names.clone()),
        (None, None) => {
            let d = default_assets()?;
            (
                Some(d.join("yolov3-tiny.cfg")),
                d.join("yolov3-tiny.weights"),
                Some(m.names.clone().unwrap_or(d.join("coco.names"))),
            )
        }
        (Some(_), None) => {
            return Err(DetectError::BadOption {
                option: "model".into(),
                why: "a cfg needs its weights; give both, a Kestrel model file as weights, or \
                      neither (the embedded yolov3-tiny default)"
                    .into(),
            })
        }
    };
    let device = parse_device(if m.device.is_empty() {
        "cpu"
    } else {
        &m.device
    })?;
    let precision = m
        .precision
        .as_deref()
        .map(crate::quant::Precision::from_name)
        .transpose()
        .map_err(|e| DetectError::BadOption {
            option: "model.precision".into(),
            why: e.to_string(),
        })?;
    let mode = crate::quant::PlanMode::Measure;
    let model = load_model(
        cfg.as_deref(),
        &weights,
        &device,
        (precision, mode),
        m.int8_chain,
    )?;
    let (w, h) = match m.size {
        Some(s) => (s as u32, s as u32),
        None => (model.input_size().0 as u32, model.input_size().1 as u32),
    };
    let names = match names {
        Some(n) => load_names(&n)?,
        None => Vec::new(),
    };
    let options = DetectOptions {
        width: w,
        height: h,
        resize: ResizeMode::Letterbox,
        conf: m.conf,
        nms: m.nms,
    };
    Ok((Detector::new(model, options)?, names))
}
