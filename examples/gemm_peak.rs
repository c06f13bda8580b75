//! Measures this machine's f32 GEMM rate through Candle's CPU `matmul` (the ceiling any
//! im2col-based convolution in Kestrel can reach). Threads follow `RAYON_NUM_THREADS`.
//! Usage: `RAYON_NUM_THREADS=2 cargo run --release --example gemm_peak [N] [ITERS]`
use candle_core::{DType, Device, Tensor};
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2048);
    let iters: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let dev = Device::Cpu;
    let a = Tensor::randn(0f32, 1.0, (n, n), &dev)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), &dev)?;
    for _ in 0..2 {
        a.matmul(&b)?.to_dtype(DType::F32)?;
    }
    let mut ms = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t0 = Instant::now();
        let c = a.matmul(&b)?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
        drop(c);
    }
    ms.sort_by(|x, y| x.total_cmp(y));
    let med = ms[ms.len() / 2];
    let best = ms[0];
    let flop = 2.0 * (n as f64).powi(3);
    println!(
        "candle matmul {n}x{n} f32: median {med:.2} ms = {:.0} GFLOP/s, best {best:.2} ms = {:.0} GFLOP/s",
        flop / med / 1e6,
        flop / best / 1e6
    );
    Ok(())
}
