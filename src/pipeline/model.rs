//! Builds the detector `run` uses from the config's `[model]` table: the embedded default is the
//! real yolov3-tiny fetched on first use (scripts/fetch-assets.sh), so a fresh machine shows real
//! detections with no files to find.

use crate::detect::cli::{assets_dir, parse_device};
use crate::detect::{load_names, DetectError, DetectOptions, Detector, ResizeMode};
use crate::model::Darknet;
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
        (Some(c), Some(w)) => (c.clone(), w.clone(), m.names.clone()),
        (None, None) => {
            let d = default_assets()?;
            (
                d.join("yolov3-tiny.cfg"),
                d.join("yolov3-tiny.weights"),
                Some(m.names.clone().unwrap_or(d.join("coco.names"))),
            )
        }
        _ => {
            return Err(DetectError::BadOption {
                option: "model".into(),
                why: "give both cfg and weights, or neither (the embedded yolov3-tiny default)"
                    .into(),
            })
        }
    };
    let device = parse_device(if m.device.is_empty() {
        "cpu"
    } else {
        &m.device
    })?;
    let model = Darknet::load(&cfg, &weights, &device)?;
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
