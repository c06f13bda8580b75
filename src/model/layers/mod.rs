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
