//! `kestrel bench`: median and p90 of each stage on one image, random weights when none given.

use std::path::PathBuf;
use std::time::Duration;

use image::RgbImage;

use super::cli::{parse_device, ModelArgs};
use super::{load_image, DetectError, DetectOptions, Detector, StageTimings};
use crate::model::{Cfg, Darknet, DarknetWeights};

/// `kestrel bench` arguments.
#[derive(clap::Args, Debug, Default)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Timed iterations (after 2 warm-up runs).
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Image to run on (default: assets/bus.jpg if present, else a synthetic gradient).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Seed of the random weights used when --weights is omitted.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// CPU threads for the convolutions (Candle/gemm's rayon pool); default: RAYON_NUM_THREADS,
    /// else every core. Set it to compare with peers on the same thread budget.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Median and 90th percentile of one stage, milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Quantiles {
    pub median_ms: f64,
    pub p90_ms: f64,
}

/// Nearest-rank quantile of a sample (sorted with `total_cmp`).
pub fn quantiles(samples: &[Duration]) -> Quantiles {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        if ms.is_empty() {
            return f64::NAN;
        }
        let rank = (q * ms.len() as f64).ceil() as usize;
        ms[rank.clamp(1, ms.len()) - 1]
    };
    Quantiles {
        median_ms: at(0.5),
        p90_ms: at(0.9),
    }
}

#[derive(serde::Serialize)]
struct BenchReport {
    cfg: String,
    weights: String,
    precision: String,
    width: u32,
    height: u32,
    iters: usize,
    threads: String,
    preprocess: Quantiles,
    forward: Quantiles,
    decode_nms: Quantiles,
    total: Quantiles,
}

fn synthetic_image() -> RgbImage {
    RgbImage::from_fn(810, 1080, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    })
}

/// Runs the benchmark and prints the table (or JSON).
pub fn bench(args: BenchArgs) -> Result<(), DetectError> {
    if let Some(n) = args.threads {
        // Before anything starts rayon's pool or asks Candle for its thread count, both of which
        // read this variable once.
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    }
    let m = &args.model;
    let device = parse_device(&m.device)?;
    let precision = m.precision.unwrap_or_default();
    let (model, weights_label) = match &m.weights {
        Some(w) => (
            super::cli::load_model(
                m.cfg.as_deref(),
                w,
                &device,
                (m.precision, m.plan_mode()),
                m.int8_chain,
            )?,
            w.display().to_string(),
        ),
        None => {
            let cfg_path = m.cfg.as_ref().ok_or_else(|| DetectError::BadOption {
                option: "cfg".into(),
                why: "--cfg is required for bench with random weights".into(),
            })?;
            let cfg = Cfg::parse_file(cfg_path)?;
            let weights = DarknetWeights::random(&cfg, args.seed)?;
            let model = Darknet::from_parts(cfg, &weights, &device)?;
            let mode = m.plan_mode();
            let loaded =
                crate::quant::loader::finish(model, &weights, precision, mode, None, None)?;
            (loaded.model, format!("random(seed={})", args.seed))
        }
    };
    let cfg_label = m
        .cfg
        .as_ref()
        .map_or_else(|| "<embedded cfg>".into(), |p| p.display().to_string());
    let (width, height) = match (m.width, m.height) {
        (Some(w), Some(h)) => (w, h),
        _ => (m.size, m.size),
    };
    let opts = DetectOptions {
        width,
        height,
        resize: m.resize,
        ..DetectOptions::default()
    };
    let detector = Detector::new(model, opts)?;
    let img = match &args.image {
        Some(p) => load_image(p)?,
        None => {
            let bus = super::cli::assets_dir().join("bus.jpg");
            if bus.is_file() {
                load_image(&bus)?
            } else {
                synthetic_image()
            }
        }
    };
    for _ in 0..2 {
        detector.detect_timed(&img)?;
    }
    let mut runs: Vec<StageTimings> = Vec::with_capacity(args.iters);
    for _ in 0..args.iters.max(1) {
        runs.push(detector.detect_timed(&img)?.1);
    }
    let pick =
        |f: fn(&StageTimings) -> Duration| quantiles(&runs.iter().map(f).collect::<Vec<_>>());
    let report = BenchReport {
        cfg: cfg_label,
        weights: weights_label,
        precision: m.precision.map_or("file's own", |p| p.name()).to_string(),
        width,
        height,
        iters: runs.len(),
        threads: std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into()),
        preprocess: pick(|t| t.preprocess),
        forward: pick(|t| t.forward),
        decode_nms: pick(|t| t.postprocess),
        total: pick(|t| t.preprocess + t.forward + t.postprocess),
    };
    print_report(&report, args.json);
    Ok(())
}

fn print_report(r: &BenchReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    println!(
        "{} ({}, {}) @ {}x{}, {} iterations, RAYON_NUM_THREADS={}",
        r.cfg, r.weights, r.precision, r.width, r.height, r.iters, r.threads
    );
    println!("{:<12} {:>10} {:>10}", "stage", "median ms", "p90 ms");
    for (name, q) in [
        ("preprocess", r.preprocess),
        ("forward", r.forward),
        ("decode+nms", r.decode_nms),
        ("total", r.total),
    ] {
        println!("{:<12} {:>10.2} {:>10.2}", name, q.median_ms, q.p90_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_nearest_rank() {
        let d: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        let q = quantiles(&d);
        assert_eq!(q.median_ms, 5.0);
        assert_eq!(q.p90_ms, 9.0);
    }
}
