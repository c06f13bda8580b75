//! Layer implementations: conv (im2col + one matmul on CPU, Candle's conv2d elsewhere), pooling,
//! activations, shortcut fusion and YOLO decoding.

pub(crate) mod activation;
pub(crate) mod conv;
pub(crate) mod nchwc;
pub(crate) mod pointwise;
pub(crate) mod pool;
pub(crate) mod sgemm;
pub(crate) mod shortcut;
pub(crate) mod vexp;
pub(crate) mod winograd;
pub(crate) mod yolo;

/// Whether the f32 convs run on Kestrel's own CPU kernels here (AVX-512; none of them switched
/// off by `KESTREL_POINTWISE=0` or `KESTREL_COL_TILE=0`): then no conv is left to the gemm
/// crate, and a steady frame allocates nothing but the heads it returns.
pub fn cpu_f32_kernels_available() -> bool {
    pointwise::available() && std::env::var("KESTREL_COL_TILE").as_deref() != Ok("0")
}

/// Grows the calling pool thread's scratch (pools, im2col tiles, the pointwise panels,
/// the Winograd and channels-in-lanes bands) to the longest any thread's has grown: run on
/// every pool thread after the first frame of an input size (`rayon::broadcast`), so that a
/// steady frame allocates nothing whichever thread runs which task.
pub(crate) fn warm_thread_scratch() {
    pool::warm_thread();
    conv::warm_thread();
    pointwise::warm_thread();
    winograd::warm_thread();
    nchwc::warm_thread();
}

/// Tests: `run` adds `got` (a kernel's stored outputs) to what its destination held, bit for
/// bit (the one f32 addition of the unfused residual add).
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn assert_adds(got: &[f32], run: impl FnOnce(&mut [f32]) -> bool) {
    let held: Vec<f32> = (0..got.len()).map(|i| (i % 7) as f32 - 3.0).collect();
    let mut sum = held.clone();
    assert!(run(&mut sum), "the add was refused");
    for (i, ((&s, &h), &g)) in sum.iter().zip(&held).zip(got).enumerate() {
        assert_eq!(s.to_bits(), (h + g).to_bits(), "added at {i}");
    }
}

/// How convolutions (and pooling) run: own CPU kernels, or Candle's tensor ops (any device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvBackend {
    /// im2col into a buffer + one `matmul` with weights packed at load; Darknet-exact pooling loops.
    CpuIm2col,
    /// Candle's `conv2d` / `max_pool2d` (CUDA, or as a cross-check on CPU).
    Candle,
}

impl ConvBackend {
    /// The fast path for the device.
    pub fn for_device(device: &candle_core::Device) -> ConvBackend {
        if device.is_cpu() {
            ConvBackend::CpuIm2col
        } else {
            ConvBackend::Candle
        }
    }
}
