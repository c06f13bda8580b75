//! `kestrel info`: per-layer table of a Darknet cfg.

use super::{summary, Cfg, ModelError};
use std::path::PathBuf;

/// Arguments of `kestrel info`.
#[derive(clap::Args, Debug, Default)]
pub struct InfoArgs {
    /// Darknet cfg file.
    #[arg(long)]
    pub cfg: PathBuf,
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
    /// Also read this `.weights` file and check it against the cfg (exact size).
    #[arg(long)]
    pub weights: Option<PathBuf>,
}

/// Prints the table (or JSON) for `args.cfg`.
pub fn info(args: InfoArgs) -> Result<(), ModelError> {
    let cfg = Cfg::parse_file(&args.cfg)?;
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
    if let Some(p) = &args.weights {
        let wts = super::DarknetWeights::read(p, &cfg)?;
        tracing::info!(file = %p.display(), convs = wts.convs.len(), "weights match the cfg");
    }
    let s = summary(&cfg, w, h)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{s}");
    }
    Ok(())
}
