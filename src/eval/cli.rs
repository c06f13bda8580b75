//! Command-line entry point of `eval`.

use super::dataset::DetDataset;
use super::results::read_result_file;
use super::vid::{self, read_vid_results, VidDataset};
use super::visdrone::VisdroneResult;
use super::{bench, coco, report, visdrone, EvalError};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which rules score the detections.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// The official VisDrone2018-DET toolkit's algorithm, quirks included.
    #[default]
    Visdrone,
    /// pycocotools rules on the same data (after ignored-region removal).
    Coco,
}

/// Which VisDrone dataset layout `--dataset` has.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// DET when the folder has the image folder, VID when it has `sequences/`.
    #[default]
    Auto,
    /// `annotations/<name>.txt` (8 columns) and `images/<name>.jpg`.
    Det,
    /// `annotations/<seq>.txt` (10 columns) and `sequences/<seq>/0000001.jpg …`.
    Vid,
}

/// `kestrel eval`: score detections on VisDrone-DET or -VID with the official protocol.
#[derive(clap::Args, Debug, Default)]
pub struct EvalArgs {
    /// VisDrone-DET split folder (annotations/ and images/).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Dataset layout (DET or VID); auto-detected by default.
    #[arg(long, value_enum, default_value_t = Layout::Auto)]
    pub layout: Layout,
    /// Image folder name inside the split (`data` in SlimYOLOv3's lists).
    #[arg(long, default_value = "images")]
    pub images: String,
    /// Folder of result files (`<name>.txt`: x,y,w,h,score,category,-1,-1), one per annotation.
    #[arg(long, conflicts_with_all = ["cfg", "weights"])]
    pub detections: Option<PathBuf>,
    /// Darknet cfg of the model to run over the split.
    #[arg(long, requires = "weights")]
    pub cfg: Option<PathBuf>,
    /// Darknet weights of the model.
    #[arg(long, requires = "cfg")]
    pub weights: Option<PathBuf>,
    /// Class names file of the model.
    #[arg(long)]
    pub names: Option<PathBuf>,
    /// Network input size.
    #[arg(long)]
    pub size: Option<u32>,
    /// Confidence threshold for the model's detections.
    #[arg(long, default_value_t = 0.001)]
    pub conf: f32,
    /// Scoring rules.
    #[arg(long, value_enum, default_value_t = Protocol::Visdrone)]
    pub protocol: Protocol,
    /// Write the numbers (fractions 0..1) and per-class values as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write per-class precision-recall curves (PNG) into this folder.
    #[arg(long)]
    pub plots: Option<PathBuf>,
    /// Degrade the feature map at a stride: LEVEL=FACTOR (e.g. 16=0.5).
    #[arg(long, value_name = "LEVEL=FACTOR")]
    pub degrade: Vec<String>,
    /// Benchmark: score N synthetic images × 500 detections and print the time.
    #[arg(long, hide = true, value_name = "N")]
    pub bench_synthetic: Option<usize>,
}

/// Parses `LEVEL=FACTOR` (stride 8/16/32, factor in (0, 1]).
pub fn parse_degrade(s: &str) -> Result<(usize, f64), EvalError> {
    let bad = |reason: String| EvalError::BadArg {
        flag: "--degrade",
        reason: format!("'{s}': {reason}"),
    };
    let (l, f) = s
        .split_once('=')
        .ok_or_else(|| bad("expected LEVEL=FACTOR".into()))?;
    let level: usize = l
        .trim()
        .parse()
        .map_err(|_| bad("LEVEL must be 8, 16 or 32".into()))?;
    if ![8, 16, 32].contains(&level) {
        return Err(bad("LEVEL must be 8, 16 or 32".into()));
    }
    let factor: f64 = f
        .trim()
        .parse()
        .map_err(|_| bad("FACTOR is not a number".into()))?;
    if !(factor > 0.0 && factor <= 1.0) {
        return Err(bad("FACTOR must be in (0, 1]".into()));
    }
    Ok((level, factor))
}

fn run_bench(n: usize) {
    let t0 = Instant::now();
    let images = bench::synthetic_images(n, 500);
    let gen = t0.elapsed();
    let t1 = Instant::now();
    let res = visdrone::evaluate(images);
    let dt = t1.elapsed();
    println!(
        "bench-synthetic: {n} images x 500 detections: generated in {:.2} s, scored (visdrone) in {:.2} s on {} threads; AP {:.4}",
        gen.as_secs_f64(),
        dt.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        res.summary.ap
    );
}

/// Where the detections come from.
enum Source<'a> {
    Files(&'a Path),
    Model(super::run_model::ModelRun<'a>),
}

/// `--layout`, resolved: VID when `sequences/` is there and the image folder is not.
fn detect_layout(root: &Path, args: &EvalArgs) -> Result<Layout, EvalError> {
    if args.layout != Layout::Auto {
        return Ok(args.layout);
    }
    let seqs = root.join("sequences").is_dir();
    let images = root.join(&args.images).is_dir();
    match (seqs, images) {
        (true, false) => Ok(Layout::Vid),
        (false, _) => Ok(Layout::Det),
        (true, true) => Err(EvalError::Dataset {
            path: root.to_path_buf(),
            reason: format!(
                "has both sequences/ and {}/: say --layout det or --layout vid",
                args.images
            ),
        }),
    }
}

fn score_det(
    root: &Path,
    images_dir: &str,
    source: &Source,
    protocol: Protocol,
) -> Result<(VisdroneResult, &'static str), EvalError> {
    let ds = DetDataset::open(root, images_dir)?;
    let mut images = ds.load_gt()?;
    match source {
        Source::Files(dir) => {
            for img in &mut images {
                img.det = read_result_file(dir, &img.name)?;
            }
        }
        Source::Model(run) => super::run_model::detect_all(&ds, &mut images, run)?,
    }
    Ok(match protocol {
        Protocol::Visdrone => (visdrone::evaluate(images), "visdrone"),
        Protocol::Coco => (coco::evaluate(images), "coco"),
    })
}

fn score_vid(
    root: &Path,
    source: &Source,
    protocol: Protocol,
) -> Result<(VisdroneResult, &'static str), EvalError> {
    let ds = VidDataset::open(root)?;
    let mut seqs = ds.load_gt()?;
    match source {
        Source::Files(dir) => {
            for seq in &mut seqs {
                seq.det = read_vid_results(dir, &seq.name)?;
            }
        }
        Source::Model(run) => super::run_model::detect_all_vid(&ds, &mut seqs, run)?,
    }
    Ok(match protocol {
        Protocol::Visdrone => (vid::evaluate_vid(&seqs), "visdrone-vid"),
        // COCO rules on the frames the VID toolkit evaluates (image = frame).
        Protocol::Coco => (coco::evaluate(vid::frames_and_weights(&seqs).0), "coco"),
    })
}

/// Runs `kestrel eval`.
pub fn eval(args: EvalArgs) -> Result<(), EvalError> {
    let degrade = args
        .degrade
        .iter()
        .map(|s| parse_degrade(s))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(n) = args.bench_synthetic {
        run_bench(n);
        return Ok(());
    }
    let root = args.dataset.as_ref().ok_or(EvalError::BadArg {
        flag: "--dataset",
        reason: "required".into(),
    })?;
    let source = match (&args.detections, &args.cfg) {
        (Some(dir), _) => Source::Files(dir),
        (None, Some(cfg)) => {
            let weights = args.weights.as_deref().ok_or(EvalError::BadArg {
                flag: "--weights",
                reason: "required with --cfg".into(),
            })?;
            Source::Model(super::run_model::ModelRun {
                cfg,
                weights,
                size: args.size,
                conf: args.conf,
                // The engine's factor is a divisor of the map's size (> 1 shrinks); ours is the
                // scale in (0, 1], so 1 stays exactly 1 (no resampling at all).
                degrade: degrade
                    .iter()
                    .map(|&(l, f)| (l, (1.0 / f) as f32))
                    .collect(),
            })
        }
        (None, None) => {
            return Err(EvalError::BadArg {
                flag: "--detections",
                reason: "give --detections DIR or --cfg C --weights W".into(),
            })
        }
    };
    let (res, name) = match detect_layout(root, &args)? {
        Layout::Vid => score_vid(root, &source, args.protocol)?,
        _ => score_det(root, &args.images, &source, args.protocol)?,
    };
    print!("{}", report::table(&res, name));
    if let Some(path) = &args.json {
        report::write_json(path, &res, name)?;
    }
    if let Some(dir) = &args.plots {
        super::plots::write_pr_plots(dir, &res)?;
    }
    Ok(())
}
