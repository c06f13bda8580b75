//! `kestrel info`: the per-layer table of a cfg.

use super::{summary, Cfg, ModelError};
use std::path::PathBuf;

/// Arguments of `kestrel info`.
#[derive(clap::Args, Debug, Default)]
pub struct InfoArgs {
    /// Darknet cfg file.
    #[arg(long)]
    pub cfg: PathBuf,
    /// Square input size (default: the cfg's [net] width/height).
    #[arg(long, conflicts_with_all = ["width", "height"])]
    pub size: Option<usize>,
    #[arg(long, requires = "height")]
    pub width: Option<usize>,
    #[arg(long, requires = "width")]
    pub height: Option<usize>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// # Errors
/// Malformed cfg or impossible size.
pub fn info(args: InfoArgs) -> Result<(), ModelError> {
    let cfg = Cfg::parse_file(&args.cfg)?;
    let (w, h) = match (args.size, args.width, args.height) {
        (Some(s), _, _) => (s, s),
        (None, Some(w), Some(h)) => (w, h),
        _ => (cfg.net.width, cfg.net.height),
    };
    let s = summary(&cfg, w, h)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).map_err(|e| ModelError::Input(e.to_string()))?
        );
    } else {
        print!("{}", s.to_table());
    }
    Ok(())
}
