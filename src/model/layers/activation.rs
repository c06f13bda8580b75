//! Activations, as scalar functions (CPU epilogues) and as tensor ops (any device).

use crate::model::Activation;
use candle_core::{Result, Tensor};

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn softplus(x: f32) -> f32 {
    // Darknet's softplus threshold: ln(1+e^x) ≈ x for large x.
    if x > 20.0 {
        x
    } else if x < -20.0 {
        x.exp()
    } else {
        x.exp().ln_1p()
    }
}

/// Applies `act` in place.
pub(crate) fn apply_slice(act: Activation, v: &mut [f32]) {
    match act {
        Activation::Linear => {}
        Activation::Leaky => v
            .iter_mut()
            .for_each(|x| *x = if *x > 0.0 { *x } else { 0.1 * *x }),
        Activation::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
        Activation::Logistic => v.iter_mut().for_each(|x| *x = sigmoid(*x)),
        Activation::Swish => v.iter_mut().for_each(|x| *x *= sigmoid(*x)),
        Activation::Mish => v.iter_mut().for_each(|x| *x *= softplus(*x).tanh()),
    }
}

/// `dst = act(src + bias)` (`src` = `dst` itself when `None`) in one pass for linear and leaky,
/// the activations of YOLO convs: the epilogues otherwise walk each output twice.
pub(crate) fn bias_act(act: Activation, dst: &mut [f32], src: Option<&[f32]>, bias: f32) {
    let leaky = |v: f32| if v > 0.0 { v } else { 0.1 * v };
    match (act, src) {
        (Activation::Leaky, Some(s)) => dst
            .iter_mut()
            .zip(s)
            .for_each(|(d, &v)| *d = leaky(v + bias)),
        (Activation::Leaky, None) => dst.iter_mut().for_each(|d| *d = leaky(*d + bias)),
        (_, Some(s)) => {
            dst.iter_mut().zip(s).for_each(|(d, &v)| *d = v + bias);
            apply_slice(act, dst);
        }
        (_, None) => {
            dst.iter_mut().for_each(|d| *d += bias);
            apply_slice(act, dst);
        }
    }
}

/// Applies `act` with tensor ops.
pub(crate) fn apply_tensor(act: Activation, x: &Tensor) -> Result<Tensor> {
    match act {
        Activation::Linear => Ok(x.clone()),
        Activation::Leaky => x.maximum(&(x * 0.1)?),
        Activation::Relu => x.relu(),
        Activation::Logistic => candle_nn::ops::sigmoid(x),
        Activation::Swish => x * candle_nn::ops::sigmoid(x)?,
        Activation::Mish => {
            // softplus = max(x,0) + ln(1 + e^{-|x|}), stable for any x
            let sp = (x.relu()? + ((x.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
            x * sp.tanh()?
        }
    }
}

#[cfg(test)]
mod bias_tests {
    use super::*;

    #[test]
    fn fused_bias_activation_equals_the_two_passes() {
        let src: Vec<f32> = (0..40).map(|i| i as f32 * 0.37 - 7.0).collect();
        for act in [
            Activation::Linear,
            Activation::Leaky,
            Activation::Mish,
            Activation::Relu,
        ] {
            let mut want: Vec<f32> = src.iter().map(|v| v + 0.25).collect();
            apply_slice(act, &mut want);
            let mut a = vec![f32::NAN; src.len()];
            bias_act(act, &mut a, Some(&src), 0.25);
            let mut b = src.clone();
            bias_act(act, &mut b, None, 0.25);
            assert_eq!(a, want, "{act:?}");
            assert_eq!(b, want, "{act:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_and_tensor_agree() {
        let vals: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.75).collect();
        for act in [
            Activation::Leaky,
            Activation::Linear,
            Activation::Relu,
            Activation::Mish,
            Activation::Swish,
            Activation::Logistic,
        ] {
            let mut a = vals.clone();
            apply_slice(act, &mut a);
            let t = Tensor::new(vals.as_slice(), &candle_core::Device::Cpu).unwrap();
            let b: Vec<f32> = apply_tensor(act, &t).unwrap().to_vec1().unwrap();
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-5 * (1.0 + x.abs()),
                    "{act:?}: {x} vs {y}"
                );
            }
        }
    }
}
