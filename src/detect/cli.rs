//! Command-line entry points of `detect` and `bench`.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Device;

use super::{load_image, load_names, DetectError, DetectOptions, Detection, Detector, ResizeMode};
use crate::model::Darknet;

/// Network input geometry and device, shared by `detect` and `bench`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ModelArgs {
    /// Darknet cfg (default: the fetched yolov3-tiny in assets/; not needed with a Kestrel model
    /// file, which embeds its cfg).
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    /// Darknet .weights or a Kestrel model file from `kestrel quantize` (default: the fetched
    /// yolov3-tiny in assets/).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Conv precision: f32, f16, q8 (CPU, per-layer plan: reduced only where faster here), bf16
    /// (CUDA, or CPUs with AMX-BF16 or AVX512-BF16). Default: the model file's own, f32 for .weights.
    #[arg(long, value_enum)]
    pub precision: Option<crate::quant::Precision>,
    /// Run every conv in the reduced precision (skips the start-up timing of the per-layer plan:
    /// worst-case accuracy, predictable start).
    #[arg(long)]
    pub all_reduced: bool,
    /// With --precision q8: keep int8 activations between int8 convs (each conv writes the next
    /// one's int8 input directly, scales calibrated on the first frame of each size and widened
    /// by later frames, as a static int8 model has them). Faster where memory traffic dominates;
    /// a frame's result then depends slightly on the frames before it. Default: off
    /// (`KESTREL_CHAIN=1` also turns it on).
    #[arg(long)]
    pub int8_chain: bool,
    /// Square input size (multiple of 32).
    #[arg(long, default_value_t = 416, conflicts_with_all = ["width", "height"])]
    pub size: u32,
    /// Input width (with --height) for non-square inputs.
    #[arg(long, requires = "height")]
    pub width: Option<u32>,
    /// Input height (with --width).
    #[arg(long, requires = "width")]
    pub height: Option<u32>,
    /// How the image is fitted into the input.
    #[arg(long, value_enum, default_value_t = ResizeMode::Letterbox)]
    pub resize: ResizeMode,
    /// `cpu` or `cuda:N` (needs the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl ModelArgs {
    /// How reduced convs are chosen: measured per layer unless `--all-reduced`.
    pub fn plan_mode(&self) -> crate::quant::PlanMode {
        if self.all_reduced {
            crate::quant::PlanMode::AllReduced
        } else {
            crate::quant::PlanMode::Measure
        }
    }

    fn input_size(&self) -> (u32, u32) {
        match (self.width, self.height) {
            (Some(w), Some(h)) => (w, h),
            _ => (self.size, self.size),
        }
    }
}

/// `kestrel detect` arguments.
#[derive(clap::Args, Debug, Default)]
pub struct DetectArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Class names, one per line (default: assets/coco.names with the default model).
    #[arg(long)]
    pub names: Option<PathBuf>,
    /// Minimum objectness × class probability.
    #[arg(long, default_value_t = 0.25)]
    pub conf: f32,
    /// NMS IoU threshold.
    #[arg(long, default_value_t = 0.45)]
    pub nms: f32,
    /// Write the JSON lines here instead of stdout.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an annotated copy of every image into this folder.
    #[arg(long)]
    pub save_dir: Option<PathBuf>,
    /// Images (default: assets/bus.jpg and assets/zidane.jpg).
    pub images: Vec<PathBuf>,
}

/// Parses `cpu` / `cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device, DetectError> {
    let bad = |why: String| DetectError::BadOption {
        option: "device".into(),
        why,
    };
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = spec
        .strip_prefix("cuda")
        .map(|r| r.trim_start_matches(':'))
        .ok_or_else(|| bad(format!("`{spec}`: expected cpu or cuda:N")))?;
    let n: usize = if ordinal.is_empty() {
        0
    } else {
        ordinal
            .parse()
            .map_err(|_| bad(format!("`{spec}`: bad CUDA ordinal")))?
    };
    Device::new_cuda(n).map_err(|e| bad(format!("`{spec}`: {e}")))
}

/// Folder of the fetched real assets (`KESTREL_ASSETS` overrides `assets/`).
pub fn assets_dir() -> PathBuf {
    std::env::var_os("KESTREL_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("assets"))
}

fn default_asset(name: &str) -> Result<PathBuf, DetectError> {
    let p = assets_dir().join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(DetectError::MissingAssets { path: p })
    }
}

fn load_detector(m: &ModelArgs, conf: f32, nms: f32) -> Result<Detector, DetectError> {
    let (width, height) = m.input_size();
    let opts = DetectOptions {
        width,
        height,
        resize: m.resize,
        conf,
        nms,
    };
    opts.validate()?;
    let device = parse_device(&m.device)?;
    let (cfg, weights) = match (&m.cfg, &m.weights) {
        (None, None) => (
            Some(default_asset("yolov3-tiny.cfg")?),
            default_asset("yolov3-tiny.weights")?,
        ),
        (cfg, Some(w)) => (cfg.clone(), w.clone()),
        (Some(_), None) => {
            return Err(DetectError::BadOption {
                option: "weights".into(),
                why: "--cfg needs --weights (or give neither for the default yolov3-tiny)".into(),
            })
        }
    };
    let model = load_model(
        cfg.as_deref(),
        &weights,
        &device,
        (m.precision, m.plan_mode()),
        m.int8_chain,
    )?;
    Detector::new(model, opts)
}

/// Loads Darknet `.weights` (with `cfg`) or a Kestrel model file at `precision`, logging the
/// per-layer plan when convs run reduced; `int8_chain` turns int8 chaining on (false: the
/// default, `KESTREL_CHAIN`).
///
/// # Errors
/// Unreadable or mismatched files; a precision the device cannot run.
pub fn load_model(
    cfg: Option<&Path>,
    weights: &Path,
    device: &Device,
    (precision, mode): (Option<crate::quant::Precision>, crate::quant::PlanMode),
    int8_chain: bool,
) -> Result<Darknet, DetectError> {
    let chain = int8_chain.then_some(true);
    let loaded = crate::quant::load_any_with(cfg, weights, device, precision, mode, chain)?;
    if !loaded.plan.is_empty() {
        let reduced = loaded.plan.iter().filter(|e| e.reduced).count();
        tracing::info!(
            precision = loaded.precision.name(),
            reduced,
            convs = loaded.plan.len(),
            "per-layer precision plan (see `kestrel info --precision`)"
        );
    }
    Ok(loaded.model)
}

/// One JSON line of `kestrel detect`.
#[derive(serde::Serialize)]
struct ImageResult<'a> {
    image: &'a str,
    width: u32,
    height: u32,
    detections: Vec<JsonDetection<'a>>,
}

#[derive(serde::Serialize)]
struct JsonDetection<'a> {
    class_id: usize,
    label: &'a str,
    score: f32,
    bbox: [f32; 4],
}

fn json_line(path: &Path, w: u32, h: u32, dets: &[Detection], names: &[String]) -> String {
    let image = path.to_str().unwrap_or("<non-UTF-8 path>");
    let detections = dets
        .iter()
        .map(|d| JsonDetection {
            class_id: d.class_id,
            label: names.get(d.class_id).map_or("?", |s| s.as_str()),
            score: d.score,
            bbox: [d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h],
        })
        .collect();
    let r = ImageResult {
        image,
        width: w,
        height: h,
        detections,
    };
    serde_json::to_string(&r).unwrap_or_default()
}

/// `kestrel detect`: every image in turn; a bad one is reported and the rest still processed.
pub fn detect(args: DetectArgs) -> Result<(), DetectError> {
    let defaults = args.model.cfg.is_none() && args.model.weights.is_none();
    let names_path = match (&args.names, defaults) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(default_asset("coco.names")?),
        (None, false) => None,
    };
    let images = if args.images.is_empty() && defaults {
        vec![default_asset("bus.jpg")?, default_asset("zidane.jpg")?]
    } else {
        args.images.clone()
    };
    if images.is_empty() {
        return Err(DetectError::BadOption {
            option: "IMAGE".into(),
            why: "no image given".into(),
        });
    }
    let detector = load_detector(&args.model, args.conf, args.nms)?;
    let names = match &names_path {
        Some(p) => {
            let n = load_names(p)?;
            super::input::check_names(p, &n, detector.model().num_classes())?;
            n
        }
        None => (0..detector.model().num_classes())
            .map(|i| i.to_string())
            .collect(),
    };
    let mut out: Box<dyn Write> = match &args.json {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|source| DetectError::Io {
            path: p.clone(),
            source,
        })?),
        None => Box::new(std::io::stdout().lock()),
    };
    let out_path = args
        .json
        .clone()
        .unwrap_or_else(|| PathBuf::from("<stdout>"));
    if let Some(dir) = &args.save_dir {
        std::fs::create_dir_all(dir).map_err(|source| DetectError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let mut failed = 0;
    for path in &images {
        match detect_one(&detector, path, &names, args.save_dir.as_deref()) {
            Ok(line) => writeln!(out, "{line}").map_err(|source| DetectError::Io {
                path: out_path.clone(),
                source,
            })?,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    out.flush().map_err(|source| DetectError::Io {
        path: out_path,
        source,
    })?;
    if failed > 0 {
        return Err(DetectError::SomeImagesFailed {
            failed,
            total: images.len(),
        });
    }
    Ok(())
}

fn detect_one(
    detector: &Detector,
    path: &Path,
    names: &[String],
    save_dir: Option<&Path>,
) -> Result<String, DetectError> {
    let _span = tracing::info_span!("detect", image = %path.display()).entered();
    let img = load_image(path)?;
    let (dets, t) = detector.detect_timed(&img)?;
    tracing::info!(
        detections = dets.len(),
        preprocess_ms = t.preprocess.as_secs_f64() * 1e3,
        forward_ms = t.forward.as_secs_f64() * 1e3,
        decode_nms_ms = t.postprocess.as_secs_f64() * 1e3,
        "done"
    );
    if let Some(dir) = save_dir {
        let file = path
            .file_name()
            .map_or_else(|| "image".into(), |f| f.to_owned());
        let target = dir.join(file);
        let mut annotated = img.clone();
        crate::publish::annotate::draw_detections(&mut annotated, &dets, names);
        crate::publish::annotate::save(&annotated, &target)?;
    }
    Ok(json_line(path, img.width(), img.height(), &dets, names))
}

pub use super::bench::{bench, BenchArgs};

/// The `detect` JSON object for one image, as a value other sinks (JSONL in `run`) extend.
pub fn detection_json(
    image: &str,
    width: u32,
    height: u32,
    dets: &[Detection],
    names: &[String],
) -> serde_json::Value {
    let dets: Vec<serde_json::Value> = dets
        .iter()
        .map(|d| {
            serde_json::json!({
                "class_id": d.class_id,
                "label": names.get(d.class_id).map_or("?", |s| s.as_str()),
                "score": d.score,
                "bbox": [d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h],
            })
        })
        .collect();
    serde_json::json!({"image": image, "width": width, "height": height, "detections": dets})
}
