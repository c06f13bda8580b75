//! `kestrel info`: per-layer table of a Darknet cfg (the precision plan is added by `quant`).

use super::{summary, Cfg, ModelError};
use std::path::{Path, PathBuf};

/// Arguments of `kestrel info`.
#[derive(clap::Args, Debug, Default)]
pub struct InfoArgs {
    /// Darknet cfg file (not needed with a Kestrel model file as --weights: it embeds its cfg).
    #[arg(long, required_unless_present = "weights")]
    pub cfg: Option<PathBuf>,
    /// Square input size (multiple of 32); default: the cfg's [net] width/height.
    #[arg(long, conflicts_with_all = ["width", "height"])]
    pub size: Option<usize>,
    #[arg(long, requires = "height")]
    pub width: Option<usize>,
    #[arg(long, requires = "width")]
    pub height: Option<usize>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also read this `.weights` file (exact size check against the cfg) or Kestrel model file.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Also show the per-layer precision plan on this CPU: f16, q8 or q4 (each conv reduced only
    /// where it is measured faster than f32). Needs --weights.
    #[arg(long, requires = "weights")]
    pub precision: Option<String>,
    /// With --precision q8: plan with int8 activations kept between int8 convs (`detect
    /// --int8-chain`); the plan then shows each chainable conv's time from int8 input.
    #[arg(long, requires = "precision")]
    pub int8_chain: bool,
}

/// Prints the table (or JSON) of `cfg` at the size `args` asks for (default: the cfg's).
pub fn print_summary(cfg: &Cfg, args: &InfoArgs) -> Result<(), ModelError> {
    let (w, h) = match (args.size, args.width, args.height) {
        (Some(s), _, _) => (s, s),
        (None, Some(w), Some(h)) => (w, h),
        _ => (cfg.net.width, cfg.net.height),
    };
    if w % 32 != 0 || h % 32 != 0 || w == 0 || h == 0 {
        return Err(ModelError::Input(format!(
            "input size {w}x{h}: width and height must be positive multiples of 32"
        )));
    }
    let s = summary(cfg, w, h)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{s}");
    }
    Ok(())
}

/// Reads `args.cfg`, checks `args.weights` against it when they are Darknet `.weights`.
pub fn read_cfg_and_check(cfg_path: &Path, args: &InfoArgs) -> Result<Cfg, ModelError> {
    let cfg = Cfg::parse_file(cfg_path)?;
    if let Some(p) = &args.weights {
        let wts = super::DarknetWeights::read(p, &cfg)?;
        tracing::info!(file = %p.display(), convs = wts.convs.len(), "weights match the cfg");
    }
    Ok(cfg)
}
