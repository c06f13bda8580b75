//! `kestrel quantize`: write a reduced-precision model file, show its plan, check its accuracy.

use super::check::{check, format_rows};
use super::loader::{finish, format_plan, to_model_file, PlanMode};
use super::{Precision, QuantError};
use crate::model::{Cfg, Darknet, DarknetWeights};
use candle_core::Device;
use std::path::PathBuf;

/// Arguments of `kestrel quantize`.
#[derive(clap::Args, Debug, Default)]
pub struct QuantizeArgs {
    /// Darknet cfg (not needed when --weights is a Kestrel model file).
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    /// Darknet `.weights` (or a Kestrel model file, for --check / --plan).
    #[arg(long)]
    pub weights: PathBuf,
    /// Storage format of the conv weights.
    #[arg(long, value_enum, default_value = "q8")]
    pub dtype: Precision,
    /// Model file to write (GGUF with the cfg embedded).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Time f32 vs reduced per conv on this machine, print the plan (and store it in --out).
    #[arg(long)]
    pub plan: bool,
    /// Compare f16, q8_0, q4_0 (and bf16 on CPUs with AMX-BF16) with f32 on these images:
    /// pseudo-AP50 and max |Δ| raw.
    #[arg(long, num_args = 1..)]
    pub check: Vec<PathBuf>,
}

/// Runs whichever of --out, --plan, --check were asked for.
pub fn quantize(args: QuantizeArgs) -> Result<(), QuantError> {
    if args.out.is_none() && !args.plan && args.check.is_empty() {
        return Err(QuantError::Usage(
            "quantize: give --out MODEL, --plan and/or --check IMAGE...".into(),
        ));
    }
    if args.out.is_some() || args.plan {
        write_model(&args)?;
    }
    if !args.check.is_empty() {
        let mut precisions = vec![Precision::F16, Precision::Q8, Precision::Q4];
        if super::amx::bf16_available() {
            // bf16 runs on this CPU (AMX-BF16): its drift is worth seeing next to q8's.
            precisions.push(Precision::Bf16);
        }
        let rows = check(args.cfg.as_deref(), &args.weights, &args.check, &precisions)?;
        print!("{}", format_rows(&rows));
    }
    Ok(())
}

fn write_model(args: &QuantizeArgs) -> Result<(), QuantError> {
    let cfg_path = args.cfg.as_ref().ok_or_else(|| {
        QuantError::Usage("quantize --out/--plan: --cfg is required with Darknet .weights".into())
    })?;
    let cfg_text = std::fs::read_to_string(cfg_path).map_err(|source| QuantError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    let cfg = Cfg::parse_str(&cfg_text, &cfg_path.display().to_string())?;
    let weights = DarknetWeights::read(&args.weights, &cfg)?;
    let mut file = to_model_file(&cfg, cfg_text, &weights, args.dtype)?;
    if args.plan {
        let model = Darknet::from_parts(cfg, &weights, &Device::Cpu)?;
        let loaded = finish(model, &weights, args.dtype, PlanMode::Measure, None, None)?;
        print!("{}", format_plan(loaded.precision, &loaded.plan));
        file.plan = loaded
            .plan
            .iter()
            .map(|e| (e.layer, if e.reduced { "q" } else { "f32" }.to_string()))
            .collect();
    }
    if let Some(out) = &args.out {
        file.write(out)?;
        let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        tracing::info!(
            out = %out.display(),
            bytes = size(out),
            source_bytes = size(&args.weights),
            dtype = args.dtype.name(),
            "model file written"
        );
    }
    Ok(())
}

/// `kestrel info`: the layer table of a cfg (or of the cfg a model file embeds), the weights
/// check, and with `--precision` the per-layer plan measured on this CPU.
pub fn info(args: crate::model::cli::InfoArgs) -> Result<(), QuantError> {
    use crate::model::cli::{print_summary, read_cfg_and_check};
    let model_file = match &args.weights {
        Some(w) => super::file::is_model_file(w)?,
        None => false,
    };
    let cfg = match (&args.cfg, &args.weights) {
        (Some(c), _) if !model_file => read_cfg_and_check(c, &args)?,
        (_, Some(w)) if model_file => {
            let file = super::file::ModelFile::read(w)?;
            Cfg::parse_str(&file.cfg_text, &w.display().to_string())?
        }
        _ => {
            return Err(QuantError::Usage(
                "info: give --cfg (Darknet) or --weights MODEL (a Kestrel model file)".into(),
            ))
        }
    };
    print_summary(&cfg, &args)?;
    if let (Some(name), Some(w)) = (&args.precision, &args.weights) {
        let precision = Precision::from_name(name)?;
        let cfg_path = if model_file {
            None
        } else {
            args.cfg.as_deref()
        };
        let loaded = super::load_any_with(
            cfg_path,
            w,
            &Device::Cpu,
            Some(precision),
            PlanMode::Measure,
            args.int8_chain.then_some(true),
        )?;
        println!();
        print!("{}", format_plan(loaded.precision, &loaded.plan));
    }
    Ok(())
}
