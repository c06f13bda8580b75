//! `kestrel detect` (images → JSON lines, annotated copies) and `kestrel bench` (stage timings).

use super::detector::{load_image, load_names, Detector, DetectorConfig, StageTimes};
use super::postprocess::PostprocessConfig;
use super::preprocess::ResizeMode;
use super::{DetectError, Detection};
use crate::model::{Cfg, Darknet, DarknetWeights};
use candle_core::Device;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Model and input options shared by `detect`, `bench` and `run`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ModelArgs {
    /// Darknet cfg (default: the fetched real yolov3-tiny).
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    /// Darknet .weights matching the cfg.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Class names, one per line.
    #[arg(long)]
    pub names: Option<PathBuf>,
    /// Square network input size (multiple of 32; default: the cfg's).
    #[arg(long, conflicts_with_all = ["width", "height"])]
    pub size: Option<usize>,
    #[arg(long, requires = "height")]
    pub width: Option<usize>,
    #[arg(long, requires = "width")]
    pub height: Option<usize>,
    #[arg(long, value_enum, default_value_t = ResizeMode::Letterbox)]
    pub resize: ResizeMode,
    /// Minimum score (objectness × class probability).
    #[arg(long, default_value_t = 0.25)]
    pub conf: f32,
    /// NMS IoU threshold.
    #[arg(long, default_value_t = 0.45)]
    pub nms: f32,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl ModelArgs {
    pub fn input(&self) -> Option<(usize, usize)> {
        match (self.size, self.width, self.height) {
            (Some(s), _, _) => Some((s, s)),
            (None, Some(w), Some(h)) => Some((w, h)),
            _ => None,
        }
    }

    pub fn detector_config(&self) -> DetectorConfig {
        DetectorConfig {
            input: self.input(),
            resize: self.resize,
            post: PostprocessConfig {
                conf: self.conf,
                nms: self.nms,
                ..Default::default()
            },
            forward: None,
        }
    }
}

/// Parses `cpu`, `cuda`, `cuda:N`.
///
/// # Errors
/// Unknown device names, or CUDA asked for in a build without the `cuda` feature.
pub fn parse_device(s: &str) -> Result<Device, DetectError> {
    match s {
        "cpu" => Ok(Device::Cpu),
        _ if s == "cuda" || s.starts_with("cuda:") => {
            let n = s
                .strip_prefix("cuda:")
                .map(str::parse::<usize>)
                .unwrap_or(Ok(0))
                .map_err(|_| DetectError::Config(format!("--device {s}: expected cuda:N")))?;
            Device::new_cuda(n).map_err(|e| {
                DetectError::Config(format!(
                    "--device {s}: {e} (was kestrel built with --features cuda?)"
                ))
            })
        }
        _ => Err(DetectError::Config(format!(
            "--device {s}: expected cpu, cuda or cuda:N"
        ))),
    }
}

/// Where the real assets live: `KESTREL_ASSETS`, else `./assets`, fetched on first use when the
/// project's fetch script is at hand.
///
/// # Errors
/// Assets missing and not fetchable.
pub fn default_assets() -> Result<PathBuf, DetectError> {
    let dir = std::env::var_os("KESTREL_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("assets"));
    let ready = |d: &Path| {
        [
            "yolov3-tiny.cfg",
            "yolov3-tiny.weights",
            "coco.names",
            "bus.jpg",
            "zidane.jpg",
        ]
        .iter()
        .all(|f| d.join(f).is_file())
    };
    if ready(&dir) {
        return Ok(dir);
    }
    let script = Path::new("scripts/fetch-assets.sh");
    if script.is_file() {
        tracing::info!(
            "fetching the real assets (yolov3-tiny, sample photos) into {}",
            dir.display()
        );
        let status = std::process::Command::new("bash")
            .arg(script)
            .arg(&dir)
            .status();
        if matches!(status, Ok(s) if s.success()) && ready(&dir) {
            return Ok(dir);
        }
    }
    Err(DetectError::Config(format!(
        "real assets not found in {}: run scripts/fetch-assets.sh (or set KESTREL_ASSETS)",
        dir.display()
    )))
}

/// Resolves cfg/weights/names, defaulting to the real yolov3-tiny assets.
///
/// # Errors
/// Missing assets.
pub fn resolve_model_files(
    args: &ModelArgs,
) -> Result<(PathBuf, PathBuf, Option<PathBuf>), DetectError> {
    match (&args.cfg, &args.weights) {
        (Some(c), Some(w)) => Ok((c.clone(), w.clone(), args.names.clone())),
        (None, None) => {
            let d = default_assets()?;
            Ok((
                d.join("yolov3-tiny.cfg"),
                d.join("yolov3-tiny.weights"),
                Some(args.names.clone().unwrap_or(d.join("coco.names"))),
            ))
        }
        _ => Err(DetectError::Config(
            "give both --cfg and --weights, or neither (the embedded yolov3-tiny default)".into(),
        )),
    }
}

/// Loads the detector and class names described by `args`.
///
/// # Errors
/// Bad files or options.
pub fn build_detector(args: &ModelArgs) -> Result<(Detector, Vec<String>), DetectError> {
    let (cfg, weights, names) = resolve_model_files(args)?;
    let device = parse_device(&args.device)?;
    let model = Darknet::load(&cfg, &weights, &device)?;
    let names = match names {
        Some(n) => load_names(&n)?,
        None => Vec::new(),
    };
    Ok((Detector::new(model, args.detector_config())?, names))
}

/// Arguments of `kestrel detect`.
#[derive(clap::Args, Debug, Default)]
pub struct DetectArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Write the JSON lines here instead of stdout.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write annotated copies of the images here.
    #[arg(long)]
    pub save_dir: Option<PathBuf>,
    /// Images (default with the embedded model: the fetched bus.jpg and zidane.jpg).
    pub images: Vec<PathBuf>,
}

/// One JSON line of `detect` output.
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
                "label": names.get(d.class_id).cloned().unwrap_or_else(|| d.class_id.to_string()),
                "score": d.score,
                "bbox": [d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h],
            })
        })
        .collect();
    serde_json::json!({"image": image, "width": width, "height": height, "detections": dets})
}

/// # Errors
/// Bad model files or options; images that fail are reported and counted, the rest still run.
pub fn detect(args: DetectArgs) -> Result<(), DetectError> {
    let (detector, names) = build_detector(&args.model)?;
    let mut images = args.images.clone();
    if images.is_empty() {
        if args.model.cfg.is_some() {
            return Err(DetectError::Config("no images given".into()));
        }
        let d = default_assets()?;
        images = vec![d.join("bus.jpg"), d.join("zidane.jpg")];
    }
    let mut out: Box<dyn Write> = match &args.json {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|e| DetectError::Io {
            path: p.display().to_string(),
            source: e,
        })?),
        None => Box::new(std::io::stdout().lock()),
    };
    if let Some(dir) = &args.save_dir {
        std::fs::create_dir_all(dir).map_err(|e| DetectError::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
    }
    let mut failed = 0;
    for path in &images {
        match detect_one(&detector, &names, path, args.save_dir.as_deref()) {
            Ok(line) => writeln!(out, "{line}").map_err(|e| DetectError::Io {
                path: "output".into(),
                source: e,
            })?,
            Err(e) => {
                tracing::error!("{e}");
                failed += 1;
            }
        }
    }
    out.flush().map_err(|e| DetectError::Io {
        path: "output".into(),
        source: e,
    })?;
    if failed > 0 {
        return Err(DetectError::SomeFailed {
            failed,
            total: images.len(),
        });
    }
    Ok(())
}

fn detect_one(
    detector: &Detector,
    names: &[String],
    path: &Path,
    save_dir: Option<&Path>,
) -> Result<serde_json::Value, DetectError> {
    let img = load_image(path)?;
    let dets = detector.detect(&img)?;
    if let Some(dir) = save_dir {
        let mut copy = img.clone();
        crate::publish::annotate::annotate(&mut copy, &dets, names);
        let name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "image.jpg".into());
        let dest = dir.join(name);
        copy.save(&dest).map_err(|e| DetectError::Image {
            path: dest.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(detection_json(
        &path.display().to_string(),
        img.width(),
        img.height(),
        &dets,
        names,
    ))
}

/// Arguments of `kestrel bench`.
#[derive(clap::Args, Debug, Default)]
pub struct BenchArgs {
    /// Darknet cfg.
    #[arg(long)]
    pub cfg: PathBuf,
    /// .weights (default: deterministic random weights for the cfg).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Square input size (default: the cfg's).
    #[arg(long)]
    pub size: Option<usize>,
    /// Timed iterations (after 2 warm-up runs).
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Image to run on (default: a synthetic 1280x720 frame).
    #[arg(long)]
    pub image: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// # Errors
/// Bad model files or options.
pub fn bench(args: BenchArgs) -> Result<(), DetectError> {
    let cfg = Cfg::parse_file(&args.cfg)?;
    let weights = match &args.weights {
        Some(w) => DarknetWeights::read(w, &cfg)?,
        None => DarknetWeights::random(&cfg, 1),
    };
    let device = parse_device(&args.device)?;
    let model = Darknet::from_parts(cfg, &weights, &device)?;
    let config = DetectorConfig {
        input: args.size.map(|s| (s, s)),
        ..Default::default()
    };
    let detector = Detector::new(model, config)?;
    let img = match &args.image {
        Some(p) => load_image(p)?,
        None => image::RgbImage::from_fn(1280, 720, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        }),
    };
    for _ in 0..2 {
        detector.detect_timed(&img)?;
    }
    let mut times: Vec<StageTimes> = Vec::with_capacity(args.iters);
    for _ in 0..args.iters.max(1) {
        times.push(detector.detect_timed(&img)?.1);
    }
    let stat = |f: fn(&StageTimes) -> f64| {
        let mut v: Vec<f64> = times.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (percentile(&v, 0.5), percentile(&v, 0.9))
    };
    let pre = stat(|t| t.preprocess_ms);
    let fwd = stat(|t| t.forward_ms);
    let post = stat(|t| t.postprocess_ms);
    let total = stat(|t| t.preprocess_ms + t.forward_ms + t.postprocess_ms);
    let (w, h) = detector.input_size();
    if args.json {
        let j = serde_json::json!({
            "cfg": args.cfg.display().to_string(), "width": w, "height": h, "iters": times.len(), "device": args.device,
            "preprocess_ms": {"median": pre.0, "p90": pre.1}, "forward_ms": {"median": fwd.0, "p90": fwd.1},
            "postprocess_ms": {"median": post.0, "p90": post.1}, "total_ms": {"median": total.0, "p90": total.1},
        });
        println!("{j}");
    } else {
        println!(
            "{} @ {w}x{h}, {} iterations on {}",
            args.cfg.display(),
            times.len(),
            args.device
        );
        println!("{:<14} {:>10} {:>10}", "stage", "median ms", "p90 ms");
        for (name, (m, p)) in [
            ("preprocess", pre),
            ("forward", fwd),
            ("decode+nms", post),
            ("total", total),
        ] {
            println!("{name:<14} {m:>10.2} {p:>10.2}");
        }
    }
    Ok(())
}
