//! Command-line entry points of `prune`: `kestrel prune` and `kestrel sparsity`.

use std::path::PathBuf;

use super::{hist, mask, net::Net, pass, summary, weights, PruneError};

/// Prune a sparsity-trained model (SlimYOLOv3) into a slim cfg + weights.
#[derive(clap::Args, Debug, Default)]
pub struct PruneArgs {
    /// Darknet cfg of the model to prune.
    #[arg(long)]
    pub cfg: PathBuf,
    /// Its `.weights` (sparsity-trained).
    #[arg(long)]
    pub weights: PathBuf,
    /// Global |γ| percentile to prune, in (0, 1); repeat for iterative passes.
    #[arg(long, required = true)]
    pub ratio: Vec<f64>,
    /// Each BN conv keeps at least this fraction of its channels (largest |γ|), in (0, 1].
    #[arg(long, default_value_t = 0.1)]
    pub min_keep: f64,
    /// Fold removed channels' constant output into the consumers (default).
    #[arg(long, overrides_with = "no_fold_beta")]
    pub fold_beta: bool,
    /// Drop removed channels' constant output like the SlimYOLOv3 seed.
    #[arg(long)]
    pub no_fold_beta: bool,
    /// Pruned cfg to write.
    #[arg(long)]
    pub out_cfg: PathBuf,
    /// Pruned weights to write.
    #[arg(long)]
    pub out_weights: PathBuf,
    /// Write the report (params, BFLOPs, kept channels per layer) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the |γ| histogram (first pass's threshold in red) as PNG here.
    #[arg(long)]
    pub hist: Option<PathBuf>,
}

/// The `--json` report.
#[derive(Debug, serde::Serialize)]
pub struct PruneReport {
    pub cfg: String,
    pub input: (usize, usize),
    pub params_before: usize,
    pub params_after: usize,
    pub bflops_before: f64,
    pub bflops_after: f64,
    pub fold_beta: bool,
    pub passes: Vec<pass::PassReport>,
    /// Wall time of load + passes + write.
    pub seconds: f64,
    /// Peak resident memory of the process (Linux `VmHWM`), if known.
    pub peak_rss_mib: Option<f64>,
}

/// Peak resident set size from `/proc/self/status` (None off Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn check_range(flag: &'static str, v: f64, max_inclusive: bool) -> Result<(), PruneError> {
    let ok = v > 0.0 && (v < 1.0 || (max_inclusive && v == 1.0));
    if ok {
        return Ok(());
    }
    Err(PruneError::Arg {
        flag,
        value: v.to_string(),
        msg: format!("must be in (0, 1{}", if max_inclusive { "]" } else { ")" }),
    })
}

fn gammas(net: &Net) -> Vec<f32> {
    let g: Vec<f32> = net
        .params
        .iter()
        .flatten()
        .filter_map(|p| p.bn.as_ref())
        .flat_map(|b| b.gamma.iter().map(|x| x.abs()))
        .collect();
    g
}

/// Runs every pass, writes cfg + weights (+ JSON, PNG) and prints the per-layer table.
pub fn prune(args: PruneArgs) -> Result<(), PruneError> {
    for &r in &args.ratio {
        check_range("ratio", r, false)?;
    }
    check_range("min-keep", args.min_keep, true)?;
    let fold = !args.no_fold_beta || args.fold_beta;
    let started = std::time::Instant::now();
    let (net, header) = {
        let _s = tracing::info_span!("load").entered();
        weights::load_net(&args.cfg, &args.weights)?
    };
    if net.bn_convs().is_empty() {
        return Err(PruneError::NoBatchNorm(args.cfg.display().to_string()));
    }
    let (p0, f0) = summary::params_and_bflops(&net);
    let mut cur = net;
    let mut passes = Vec::new();
    for &r in &args.ratio {
        if passes.is_empty() {
            if let Some(h) = &args.hist {
                let t = mask::global_threshold(&cur, r)?;
                hist::write_png(h, &gammas(&cur), Some(t))?;
            }
        }
        let (next, rep) = pass::prune_pass(&cur, r, args.min_keep, fold)?;
        passes.push(rep);
        cur = next;
    }
    std::fs::write(&args.out_cfg, cur.cfg.lines.join("\n") + "\n")
        .map_err(|e| PruneError::io(&args.out_cfg, e))?;
    weights::write(&args.out_weights, &cur, header)?;
    let (p1, f1) = summary::params_and_bflops(&cur);
    let report = PruneReport {
        cfg: args.cfg.display().to_string(),
        input: (cur.input.0, cur.input.1),
        params_before: p0,
        params_after: p1,
        bflops_before: f0,
        bflops_after: f1,
        fold_beta: fold,
        passes,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_mib(),
    };
    print_table(&report);
    if let Some(j) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| PruneError::Weights {
            path: j.clone(),
            msg: e.to_string(),
        })?;
        std::fs::write(j, text).map_err(|e| PruneError::io(j, e))?;
    }
    Ok(())
}

fn print_table(r: &PruneReport) {
    for (n, p) in r.passes.iter().enumerate() {
        println!(
            "pass {} ratio {} |γ| threshold {:.6}",
            n + 1,
            p.ratio,
            p.threshold
        );
        println!("{:>6} {:>8} {:>8}", "layer", "before", "after");
        for k in &p.kept {
            println!("{:>6} {:>8} {:>8}", k.layer, k.before, k.after);
        }
    }
    let pct = |a: f64, b: f64| 100.0 * a / b.max(1e-12);
    println!(
        "params {} -> {} ({:.1} %), BFLOPs at {}x{}: {:.3} -> {:.3} ({:.1} %), fold-beta {}",
        r.params_before,
        r.params_after,
        pct(r.params_after as f64, r.params_before as f64),
        r.input.0,
        r.input.1,
        r.bflops_before,
        r.bflops_after,
        pct(r.bflops_after, r.bflops_before),
        if r.fold_beta { "on" } else { "off" }
    );
    let mem = r
        .peak_rss_mib
        .map_or("unknown".into(), |m| format!("{m:.0} MiB"));
    println!("pruned in {:.2} s, peak memory {mem}", r.seconds);
}

/// How sparse the BN scale factors are, before choosing `--ratio`.
#[derive(clap::Args, Debug, Default)]
pub struct SparsityArgs {
    /// Darknet cfg.
    #[arg(long)]
    pub cfg: PathBuf,
    /// Its `.weights`.
    #[arg(long)]
    pub weights: PathBuf,
    /// Write the |γ| histogram as PNG here.
    #[arg(long)]
    pub hist: Option<PathBuf>,
}

/// Prints |γ| quantiles, fractions below fixed thresholds, and per-layer statistics.
pub fn sparsity(args: SparsityArgs) -> Result<(), PruneError> {
    let (net, _) = weights::load_net(&args.cfg, &args.weights)?;
    let mut all = gammas(&net);
    if all.is_empty() {
        return Err(PruneError::NoBatchNorm(args.cfg.display().to_string()));
    }
    all.sort_by(f32::total_cmp);
    let q = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize];
    println!(
        "{} BN channels in {} convs",
        all.len(),
        net.bn_convs().len()
    );
    for p in [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0] {
        println!("|γ| quantile {:>4.2}: {:.6}", p, q(p));
    }
    for t in [1e-3f32, 1e-2, 5e-2, 1e-1] {
        let below = all.partition_point(|&x| x < t);
        println!(
            "|γ| < {t:<6}: {:5.1} %",
            100.0 * below as f64 / all.len() as f64
        );
    }
    println!(
        "{:>6} {:>6} {:>10} {:>10} {:>8}",
        "layer", "n", "min|γ|", "median|γ|", "<0.01"
    );
    for (i, p) in net.params.iter().enumerate() {
        let Some(bn) = p.as_ref().and_then(|p| p.bn.as_ref()) else {
            continue;
        };
        let mut g: Vec<f32> = bn.gamma.iter().map(|x| x.abs()).collect();
        g.sort_by(f32::total_cmp);
        let small = g.partition_point(|&x| x < 0.01);
        println!(
            "{i:>6} {:>6} {:>10.6} {:>10.6} {:>8}",
            g.len(),
            g[0],
            g[g.len() / 2],
            small
        );
    }
    if let Some(h) = &args.hist {
        hist::write_png(h, &all, None)?;
    }
    Ok(())
}
