//! `kestrel run`: config file + flags → a running pipeline; summary at exit.

use super::model::{build_detector, default_assets, ModelArgs};
use super::{report_failure, run_pipeline, PipelineError, RunPlan};
use crate::capture::spec::SourceOptions;
use crate::capture::SourceSpec;
use crate::config::Config;
use crate::publish::frames::FramesSink;
use crate::publish::jsonl::JsonlSink;
use crate::publish::mavlink::{MavlinkConfig, MavlinkSink};
use crate::publish::Sink;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `kestrel run`; each overrides the same key of `--config`.
#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// TOML config (see kestrel.example.toml); flags given here win over it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// camera:N | replay:DIR | video:FILE | synthetic (default: the fetched sample photos).
    #[arg(long)]
    pub source: Option<String>,
    /// Pace the source at this frame rate (default: as fast as possible / the camera's).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Restart a replay at its end.
    #[arg(long = "loop")]
    pub looped: bool,
    /// Camera mode / synthetic frame size.
    #[arg(long)]
    pub width: Option<u32>,
    #[arg(long)]
    pub height: Option<u32>,
    /// Camera pixel format: mjpeg or yuyv.
    #[arg(long)]
    pub pixel_format: Option<String>,
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[arg(long)]
    pub names: Option<PathBuf>,
    /// Square network input size (multiple of 32).
    #[arg(long)]
    pub size: Option<usize>,
    #[arg(long)]
    pub conf: Option<f32>,
    #[arg(long)]
    pub nms: Option<f32>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Conv precision: f32, f16, q8, q4 (CPU, per-layer plan), bf16 (CUDA, or CPUs with
    /// AMX-BF16 or AVX512-BF16); default: the model file's own.
    #[arg(long)]
    pub precision: Option<String>,
    /// With --precision q8: int8 activations kept between int8 convs (scales calibrated on the
    /// first frame; see `kestrel detect --help`).
    #[arg(long)]
    pub int8_chain: bool,
    /// JSON Lines output file ("-" = stdout).
    #[arg(long)]
    pub jsonl: Option<String>,
    /// Folder for annotated frames.
    #[arg(long)]
    pub save_dir: Option<PathBuf>,
    /// Save every Nth annotated frame.
    #[arg(long)]
    pub save_every: Option<u64>,
    /// MAVLink endpoint, e.g. udpout:127.0.0.1:14550 ("none" = off).
    #[arg(long)]
    pub mavlink: Option<String>,
    #[arg(long)]
    pub max_frames: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Write the final summary as JSON here.
    #[arg(long)]
    pub stats_json: Option<PathBuf>,
    /// Seconds between stats lines.
    #[arg(long)]
    pub stats_every: Option<f64>,
    /// Publisher queue length (reports beyond it are dropped and counted).
    #[arg(long)]
    pub publish_queue: Option<usize>,
    #[command(flatten)]
    pub mavlink_opts: super::mavlink_flags::MavlinkFlags,
}

fn set<T>(dst: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *dst = v;
    }
}

/// The config file (or the embedded default) with the flags laid over it.
///
/// # Errors
/// Unreadable or invalid config, invalid values.
pub fn effective_config(a: &RunArgs) -> Result<Config, PipelineError> {
    let mut c = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let (s, m, o, l) = (&mut c.source, &mut c.model, &mut c.output, &mut c.limits);
    set(&mut s.source, a.source.clone().map(Some));
    set(&mut s.fps, a.fps.map(Some));
    s.looped |= a.looped;
    set(&mut s.width, a.width.map(Some));
    set(&mut s.height, a.height.map(Some));
    set(&mut s.pixel_format, a.pixel_format.clone().map(Some));
    set(&mut m.cfg, a.cfg.clone().map(Some));
    set(&mut m.weights, a.weights.clone().map(Some));
    set(&mut m.names, a.names.clone().map(Some));
    set(&mut m.size, a.size.map(Some));
    set(&mut m.conf, a.conf.map(Some));
    set(&mut m.nms, a.nms.map(Some));
    set(&mut m.device, a.device.clone().map(Some));
    set(&mut m.precision, a.precision.clone().map(Some));
    if a.int8_chain {
        m.int8_chain = Some(true);
    }
    set(&mut o.jsonl, a.jsonl.clone().map(Some));
    set(&mut o.save_dir, a.save_dir.clone().map(Some));
    set(&mut o.save_every, a.save_every);
    set(
        &mut o.mavlink,
        a.mavlink.clone().map(|u| Some(u).filter(|u| u != "none")),
    );
    set(&mut o.stats_json, a.stats_json.clone().map(Some));
    set(&mut o.stats_every_s, a.stats_every);
    set(&mut o.publish_queue, a.publish_queue);
    set(&mut l.max_frames, a.max_frames.map(Some));
    set(&mut l.duration_s, a.duration.map(Some));
    a.mavlink_opts.apply(&mut c.mavlink)?;
    if s.source.is_none() {
        // the embedded demo: the sample photos as a short looped sequence
        s.fps = s.fps.or(Some(5.0));
        s.looped = true;
        l.max_frames = l.max_frames.or(Some(10));
    }
    c.validate()?;
    Ok(c)
}

/// The effective config as TOML, `[mavlink]` included (its endpoint is `output.mavlink`).
pub fn print_config(c: &Config) -> String {
    let mut doc = c.to_toml();
    let mut t = toml::Table::new();
    t.insert(
        "mavlink".into(),
        super::mavlink_flags::mavlink_table(&c.mavlink).into(),
    );
    doc.push('\n');
    doc.push_str(&toml::to_string_pretty(&t).unwrap_or_default());
    doc
}

fn model_args(c: &Config) -> ModelArgs {
    let m = &c.model;
    ModelArgs {
        cfg: m.cfg.clone(),
        weights: m.weights.clone(),
        names: m.names.clone(),
        size: m.size,
        conf: m.conf.unwrap_or(0.25),
        nms: m.nms.unwrap_or(0.45),
        device: m.device.clone().unwrap_or_else(|| "cpu".into()),
        precision: m.precision.clone(),
        int8_chain: m.int8_chain.unwrap_or(false),
    }
}

/// The link comes up before anything else: the flight controller sees STANDBY while the model
/// loads, and CRITICAL (not silence) if it does not.
fn start_mavlink(c: &Config) -> Result<Vec<Box<dyn Sink>>, PipelineError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(url) = &c.output.mavlink {
        let cfg = MavlinkConfig {
            url: url.clone(),
            ..c.mavlink.clone()
        };
        sinks.push(Box::new(MavlinkSink::start(&cfg)?));
        tracing::info!("publishing MAVLink to {url}");
    }
    Ok(sinks)
}

/// The model plus the file outputs (JSONL joins `sinks`; annotated frames are returned).
fn load_model_and_outputs(
    c: &Config,
    sinks: &mut Vec<Box<dyn Sink>>,
) -> Result<(crate::detect::Detector, Option<FramesSink>), PipelineError> {
    let (detector, names) = build_detector(&model_args(c))?;
    if let Some(j) = &c.output.jsonl {
        sinks.push(Box::new(JsonlSink::create(j, names.clone())?));
    }
    let frames = match &c.output.save_dir {
        Some(d) => Some(FramesSink::create(
            d.clone(),
            c.output.save_every,
            names.clone(),
        )?),
        None => None,
    };
    Ok((detector, frames))
}

/// # Errors
/// Bad config, model or source; per-frame failures are counted, not returned.
pub fn run(a: RunArgs) -> Result<(), PipelineError> {
    let c = effective_config(&a)?;
    if a.print_config {
        print!("{}", print_config(&c));
        return Ok(());
    }
    let source: SourceSpec = match &c.source.source {
        Some(s) => s.parse()?,
        None => SourceSpec::Replay(default_assets()?),
    };
    let mut sinks = start_mavlink(&c)?;
    let (detector, frames) = match load_model_and_outputs(&c, &mut sinks) {
        Ok(v) => v,
        Err(e) => {
            report_failure(&mut sinks, &e.to_string());
            return Err(e);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|source| PipelineError::Io {
            path: "signal handler".into(),
            source,
        })?;
    }
    let plan = RunPlan {
        source,
        source_opts: SourceOptions {
            fps: c.source.fps,
            looped: c.source.looped,
            width: c.source.width,
            height: c.source.height,
            pixel_format: c.source.pixel_format.clone(),
        },
        max_frames: c.limits.max_frames,
        duration: c.limits.duration_s.map(Duration::from_secs_f64),
        stats_every: Duration::from_secs_f64(c.output.stats_every_s),
        publish_queue: c.output.publish_queue,
    };
    let stats = run_pipeline(plan, Box::new(detector), sinks, frames, stop)?;
    tracing::info!("summary: {}", stats.line());
    let summary = stats.summary();
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    if let Some(p) = &c.output.stats_json {
        std::fs::write(p, summary.to_string()).map_err(|source| PipelineError::Io {
            path: p.display().to_string(),
            source,
        })?;
    }
    Ok(())
}
