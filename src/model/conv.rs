//! A convolution with its batch norm folded in at load (the re-parameterisation idea of YOLOv6):
//! `W' = W·γ/(√var + 1e-6)`, `b' = β − mean·γ/(√var + 1e-6)` — Darknet's CPU formula, which
//! OpenCV DNN also follows — so inference is one conv + bias + activation.
//!
//! The conv itself goes through [`ConvBackend`], the seam where faster kernels plug in while CUDA
//! keeps Candle's own.

use super::forward::activate;
use super::layers::ConvSpec;
use super::weights::ConvWeights;
use candle_core::{Device, Tensor};

/// Darknet's BN epsilon, added to the standard deviation (not the variance).
pub const BN_EPS: f32 = 1e-6;

/// Which implementation runs the convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvBackend {
    /// Candle's `conv2d` (CPU and CUDA).
    Candle,
}

/// A conv layer ready to run: folded kernel `[O, I/g, k, k]`, bias `[1, O, 1, 1]`.
pub struct FoldedConv {
    pub spec: ConvSpec,
    pub weight: Tensor,
    pub bias: Tensor,
    pub backend: ConvBackend,
}

/// Folds BN into (kernel, bias) on the host; returns them as plain vectors.
pub fn fold_bn(w: &ConvWeights, filters: usize) -> (Vec<f32>, Vec<f32>) {
    let per_out = w.kernel.len() / filters.max(1);
    match &w.bn {
        None => (w.kernel.clone(), w.biases.clone()),
        Some(bn) => {
            let mut kernel = w.kernel.clone();
            let mut bias = Vec::with_capacity(filters);
            for o in 0..filters {
                let scale = bn.scales[o] / (bn.variance[o].sqrt() + BN_EPS);
                kernel[o * per_out..(o + 1) * per_out]
                    .iter_mut()
                    .for_each(|k| *k *= scale);
                bias.push(w.biases[o] - bn.mean[o] * scale);
            }
            (kernel, bias)
        }
    }
}

impl FoldedConv {
    /// # Errors
    /// Weight arrays whose lengths do not match the layer.
    pub fn new(
        spec: &ConvSpec,
        w: &ConvWeights,
        in_channels: usize,
        device: &Device,
    ) -> Result<FoldedConv, String> {
        let n = spec.filters;
        let per_out = in_channels / spec.groups * spec.size * spec.size;
        if w.kernel.len() != n * per_out || w.biases.len() != n {
            return Err(format!(
                "kernel has {} values and bias {}, the cfg needs {} and {n}",
                w.kernel.len(),
                w.biases.len(),
                n * per_out
            ));
        }
        let (kernel, bias) = fold_bn(w, n);
        let weight = Tensor::from_vec(
            kernel,
            (n, in_channels / spec.groups, spec.size, spec.size),
            device,
        )
        .map_err(|e| e.to_string())?;
        let bias = Tensor::from_vec(bias, (1, n, 1, 1), device).map_err(|e| e.to_string())?;
        Ok(FoldedConv {
            spec: spec.clone(),
            weight,
            bias,
            backend: ConvBackend::Candle,
        })
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        activate(&self.forward_linear(x)?, self.spec.activation)
    }

    /// Conv + bias, before the activation.
    pub fn forward_linear(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = match self.backend {
            ConvBackend::Candle => x.conv2d(
                &self.weight,
                self.spec.padding,
                self.spec.stride,
                1,
                self.spec.groups,
            )?,
        };
        y.broadcast_add(&self.bias)
    }
}
