//! Times Kestrel's f32 forward pass (the engine's default CPU backend) on one cfg + `.weights`,
//! batch 1, threads from `RAYON_NUM_THREADS`; used by `scripts/bench-peers.sh` for the Kestrel
//! column until `kestrel bench` exists. INPUT is a raw little-endian f32 file holding
//! `1×3×SIZE×SIZE` (the letterboxed image the peers get); without it the input is 0.5 everywhere.
//! Prints `{"forward": {"median_ms": …, "p90_ms": …, "min_ms": …, "iters": …}}` (the minimum is
//! the steadiest figure on a VM whose speed drifts).
//! `PRECISION=q8|bf16|f16` (environment) loads the reduced-precision model with its per-layer plan
//! measured at load (`PLAN=all`: every conv reduced), as `kestrel bench --precision` does, but
//! times the forward alone (no decode/NMS between frames to evict the caches).
//! Also prints the process's minor page faults per forward (`/proc/self/stat`).
//! Usage: `forward_bench CFG WEIGHTS SIZE ITERS [INPUT.f32]`
use candle_core::{Device, Tensor};
use kestrel::model::Darknet;
use kestrel::quant::{load_any, PlanMode, Precision};
use std::path::Path;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 4 {
        return Err("usage: forward_bench CFG WEIGHTS SIZE ITERS [INPUT.f32]".into());
    }
    let size: usize = a[2].parse()?;
    let iters: usize = a[3].parse()?;
    let dev = Device::Cpu;
    let net = match std::env::var("PRECISION").ok().filter(|p| p != "f32") {
        None => Darknet::load(Path::new(&a[0]), Path::new(&a[1]), &dev)?,
        Some(p) => {
            let mode = match std::env::var("PLAN").as_deref() {
                Ok("all") => PlanMode::AllReduced,
                _ => PlanMode::Measure,
            };
            let loaded = load_any(
                Some(Path::new(&a[0])),
                Path::new(&a[1]),
                &dev,
                Some(Precision::from_name(&p)?),
                mode,
            )?;
            let reduced = loaded.plan.iter().filter(|e| e.reduced).count();
            eprintln!("{p}: {reduced} of {} convs reduced", loaded.plan.len());
            loaded.model
        }
    };
    let n = 3 * size * size;
    let data: Vec<f32> = match a.get(4) {
        Some(p) => {
            let bytes = std::fs::read(p)?;
            if bytes.len() != 4 * n {
                return Err(format!("{p}: {} bytes, want {}", bytes.len(), 4 * n).into());
            }
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
        None => vec![0.5; n],
    };
    let x = Tensor::from_vec(data, (1, 3, size, size), &dev)?;
    for _ in 0..3 {
        net.forward(&x)?;
    }
    net.reset_layer_times();
    let mut ms = Vec::with_capacity(iters);
    let faults0 = minor_faults();
    for _ in 0..iters {
        let t0 = Instant::now();
        let out = net.forward(&x)?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
        drop(out);
    }
    let faults = minor_faults()
        .zip(faults0)
        .map(|(b, a)| (b - a) as f64 / iters as f64);
    ms.sort_by(|x, y| x.total_cmp(y));
    let p90 = ms[((ms.len() * 9) / 10).min(ms.len() - 1)];
    println!(
        "{{\"forward\": {{\"median_ms\": {:.3}, \"p90_ms\": {p90:.3}, \"min_ms\": {:.3}, \"iters\": {iters}, \"minor_faults_per_iter\": {}}}}}",
        ms[ms.len() / 2],
        ms[0],
        faults.map_or("null".into(), |f| format!("{f:.1}"))
    );
    if std::env::var("LAYERS").as_deref() == Ok("1") {
        print_layer_times(&net, size)?;
    }
    Ok(())
}

/// `LAYERS=1`: each layer's mean ms per frame (stderr), its share, and GMAC/s for convs.
fn print_layer_times(net: &Darknet, size: usize) -> Result<(), Box<dyn std::error::Error>> {
    let summary = kestrel::model::summary(net.cfg(), size, size)?;
    let (times, frames) = net.layer_times();
    let total: f64 = times.iter().map(|t| t.as_secs_f64()).sum();
    eprintln!(
        "layer  kind      detail                      ms     share  GMAC/s   ({frames} frames)"
    );
    for (l, t) in summary.layers.iter().zip(&times) {
        let s = t.as_secs_f64();
        let rate = match l.bflops > 0.0 && s > 0.0 {
            true => format!("{:7.0}", l.bflops / 2.0 / s),
            false => String::new(),
        };
        eprintln!(
            "{:5}  {:8}  {:24}  {:7.3}  {:5.1}%  {rate}",
            l.index,
            l.kind,
            l.detail,
            s * 1e3,
            100.0 * s / total.max(1e-12)
        );
    }
    eprintln!("sum of layers: {:.3} ms", total * 1e3);
    Ok(())
}

/// Minor page faults of this process so far (field 10 of `/proc/self/stat`), where readable.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(7)?.parse().ok()
}
