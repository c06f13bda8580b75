//! GFLOP/s of single Kestrel conv layers (BN + leaky, engine's default CPU backend) at the
//! shapes that dominate YOLOv3-SPP3 @416, batch 1; threads from `RAYON_NUM_THREADS`.
//! Compare with `gemm_peak` (the same machine's f32 GEMM rate through Candle).
//! Usage: `conv_gflops [ITERS]`
use candle_core::{Device, Tensor};
use kestrel::model::{Cfg, Darknet, DarknetWeights};
use std::time::Instant;

/// (in channels, out channels, kernel, stride, input side)
/// (The engine accepts only multiples of 32, so 52²/26²/13² are measured at 64²/32²/32².)
const SHAPES: &[(usize, usize, usize, usize, usize)] = &[
    (128, 256, 3, 1, 64),
    (256, 512, 3, 1, 32),
    (512, 1024, 3, 1, 32),
    (1024, 512, 1, 1, 32),
    (3, 32, 3, 1, 416),
    (32, 64, 3, 2, 416),
    (64, 32, 1, 1, 224),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dev = Device::Cpu;
    for &(ci, co, k, s, side) in SHAPES {
        let text = format!(
            "[net]\nwidth={side}\nheight={side}\nchannels={ci}\n[convolutional]\n\
             batch_normalize=1\nfilters={co}\nsize={k}\nstride={s}\npad=1\nactivation=leaky\n"
        );
        let cfg = Cfg::parse_str(&text, "conv_gflops")?;
        let w = DarknetWeights::random(&cfg, 1)?;
        let net = Darknet::from_parts(cfg, &w, &dev)?;
        let x = Tensor::randn(0f32, 1.0, (1, ci, side, side), &dev)?;
        let _ = net.forward(&x)?;
        let mut ms = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t0 = Instant::now();
            let _ = net.forward(&x)?;
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        let med = ms[ms.len() / 2];
        let out = side.div_ceil(s);
        let flop = 2.0 * (co * ci * k * k * out * out) as f64;
        println!(
            "{ci}->{co} {k}x{k} s{s} @{side}^2: median {med:.2} ms = {:.0} GFLOP/s",
            flop / med / 1e6
        );
    }
    Ok(())
}
