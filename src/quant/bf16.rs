//! bf16 convolution on the CPU (opt-in: `--precision bf16` on a CPU with AMX-BF16 or
//! AVX512-BF16): weights and activations rounded to bf16 (8 significant bits), products summed
//! in f32 by AMX `tdpbf16ps` (16 × 16 × 32 multiply-adds per instruction) or AVX-512
//! `vdpbf16ps` (32). Stride-1 and -2 convs, read straight from padded planes of channel pairs
//! as the int8 kernel reads quads (`direct::DirectWeights`); every other conv stays f32.
//! Approximate by construction (≈ 3 significant digits per operand), so never
//! the default.

use super::direct::{DirectGeom, DirectWeights, TileOp};
use super::direct_f32::{conv_f32_sums, F32Scratch};
use super::int8::{Epilogue, Int8Geom};

/// f32 → bf16, rounding to nearest even (NaN stays NaN).
pub fn to_bf16(v: f32) -> u16 {
    let b = v.to_bits();
    if v.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// A conv's weights as bf16 pairs for the tiles.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub struct Bf16Conv {
    cout: usize,
    cin: usize,
    direct: DirectWeights,
}

impl Bf16Conv {
    /// From a BN-folded OIHW kernel (`[cout][cin·size²]`); `None` where this CPU has neither
    /// AMX-BF16 nor AVX512-BF16 (or the kernel is not `cout·cin·size²` long).
    pub fn new(kernel: &[f32], cout: usize, cin: usize, size: usize) -> Option<Bf16Conv> {
        let taps = size * size;
        if kernel.len() != cout * cin * taps {
            return None;
        }
        let words = cin.div_ceil(2);
        let mut w = vec![0i32; cout * taps * words];
        for o in 0..cout {
            for c in 0..cin {
                for t in 0..taps {
                    let v = to_bf16(kernel[(o * cin + c) * taps + t]) as u32;
                    w[(o * taps + t) * words + c / 2] |= (v << (16 * (c % 2))) as i32;
                }
            }
        }
        Some(Bf16Conv {
            cout,
            cin,
            direct: DirectWeights::new(TileOp::Bf16, &w, cout, words, size)?,
        })
    }

    /// Conv of one `[cin, h, w]` plane into `dst` = `[cout, ho·wo]`, then `epilogue`, with the
    /// caller's buffers. Stride 1 or 2; returns false (nothing written) for anything else.
    pub(crate) fn forward_fused(
        &self,
        plane: &[f32],
        g: Int8Geom,
        dst: &mut [f32],
        epilogue: Option<Epilogue>,
        scratch: &mut F32Scratch,
    ) -> bool {
        if g.cin != self.cin || plane.len() < g.cin * g.h * g.w {
            return false;
        }
        let bufs = (&mut scratch.planes, &mut scratch.segs);
        let all = |_: &DirectGeom, _: usize| true;
        let fill = |dg: &DirectGeom, x: &mut [u32]| bf16_planes(plane, g, dg, x);
        conv_f32_sums(
            &self.direct,
            self.cout,
            g,
            dst,
            (epilogue, false),
            bufs,
            all,
            fill,
        )
    }
}

/// The input as zero-padded planes of channel pairs (see `direct::DirectGeom`; every word of `x`
/// written: padding, and channels past `cin`, as bf16 zeros).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn bf16_planes(plane: &[f32], g: Int8Geom, dg: &DirectGeom, x: &mut [u32]) {
    let hw = g.h * g.w;
    let channel = |c: usize| (c < g.cin).then(|| &plane[c * hw..(c + 1) * hw]);
    let dims = (g.h, g.w, g.pad);
    super::direct::fill_planes(dg, dims, g.cin.div_ceil(2), 0, x, |q, y, out| {
        let at = y * g.w..(y + 1) * g.w;
        let (lo, hi) = (channel(2 * q), channel(2 * q + 1));
        pair_row(lo.map(|c| &c[at.clone()]), hi.map(|c| &c[at]), out);
    });
}

/// One row of bf16 pair words (a missing channel is zero).
fn pair_row(lo: Option<&[f32]>, hi: Option<&[f32]>, dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f was found at run time.
        return unsafe { pair_row_avx512(lo, hi, dst) };
    }
    pair_row_portable(lo, hi, dst)
}

/// [`to_bf16`] on 16 lanes at a time (the same rounding, NaN kept quiet), the two channels
/// shifted into the halves of each word.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn pair_row_avx512(lo: Option<&[f32]>, hi: Option<&[f32]>, dst: &mut [u32]) {
    use std::arch::x86_64::*;
    let full = dst.len() / 16 * 16;
    if [lo, hi].iter().flatten().any(|r| r.len() < full) {
        return pair_row_portable(lo, hi, dst);
    }
    let round = |p: *const f32, m: __mmask16| {
        // SAFETY: the caller reads the lanes under `m` at p, inside its row (masked-off lanes
        // are not read).
        let v = unsafe { _mm512_maskz_loadu_ps(m, p) };
        let b = _mm512_castps_si512(v);
        let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
        let up = _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7FFF)), odd);
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        let quiet = _mm512_or_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(0x40));
        _mm512_mask_blend_epi32(nan, _mm512_srli_epi32::<16>(up), quiet)
    };
    let n = dst.len();
    // The tail under a mask, the same operations (on 13- and 26-wide maps it is all or 10/26 of
    // every row), where every present row reaches it.
    let masked_tail = [lo, hi].iter().flatten().all(|r| r.len() >= n);
    let end = if masked_tail { n } else { full };
    for i in (0..end).step_by(16) {
        let m = super::int8::lane_mask(end - i);
        let mut word = _mm512_setzero_si512();
        if let Some(lo) = lo {
            word = round(lo[i..].as_ptr(), m);
        }
        if let Some(hi) = hi {
            word = _mm512_or_si512(word, _mm512_slli_epi32::<16>(round(hi[i..].as_ptr(), m)));
        }
        // SAFETY: the lanes under the mask, i..min(i + 16, end), lie in dst (end ≤ dst.len()).
        unsafe { _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(i) as *mut _, m, word) };
    }
    if masked_tail {
        return;
    }
    let lo = lo.map(|r| &r[full.min(r.len())..]);
    let hi = hi.map(|r| &r[full.min(r.len())..]);
    pair_row_portable(lo, hi, &mut dst[full..]);
}

fn pair_row_portable(lo: Option<&[f32]>, hi: Option<&[f32]>, dst: &mut [u32]) {
    dst.fill(0);
    for (shift, src) in [(0, lo), (16, hi)] {
        if let Some(src) = src {
            for (d, &v) in dst.iter_mut().zip(src) {
                *d |= (to_bf16(v) as u32) << shift;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::random::SplitMix64;
    use crate::quant::int8::tests::conv_f32;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3F80);
        // 1 + 2^-8 is halfway between two bf16 values: ties to the even one (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3F80);
        // Just above halfway rounds up.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0 + 1.0 / 65536.0), 0x3F81);
        assert_eq!(to_bf16(-2.5), 0xC020);
        assert!(f32::from_bits((to_bf16(f32::NAN) as u32) << 16).is_nan());
    }

    /// The vector pair packing gives the portable words: every length (tails), missing
    /// channels, ties, NaN.
    #[test]
    fn pair_rows_match_the_portable_packing() {
        let mut rng = SplitMix64::new(5);
        for n in [0, 1, 15, 16, 17, 40, 67] {
            let mut a: Vec<f32> = (0..n).map(|_| rng.uniform(-3.0, 3.0)).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.uniform(-1e-3, 1e3)).collect();
            if n > 3 {
                a[1] = f32::NAN;
                a[2] = 1.0 + 1.0 / 256.0;
            }
            for (lo, hi) in [
                (Some(&a[..]), Some(&b[..])),
                (None, Some(&b[..])),
                (Some(&a[..]), None),
            ] {
                let (mut want, mut got) = (vec![7u32; n], vec![9u32; n]);
                pair_row_portable(lo, hi, &mut want);
                pair_row(lo, hi, &mut got);
                assert_eq!(got, want, "n = {n}");
            }
        }
    }

    /// The bf16 conv (AMX or AVX-512) against the f32 conv of the bf16-rounded operands (the
    /// same products, summed in another order): within 1e-4 of the output scale; and against
    /// plain f32 within bf16's own error.
    #[test]
    fn bf16_conv_matches_f32_on_rounded_operands() {
        if !crate::quant::cpu_bf16_available() {
            println!("no AMX-BF16 or AVX512-BF16 on this CPU: the bf16 conv is refused (checked)");
            assert!(Bf16Conv::new(&[0.0; 9], 1, 1, 3).is_none());
            return;
        }
        let mut rng = SplitMix64::new(21);
        for (cin, cout, h, w, size, stride) in [
            (3, 16, 13, 11, 3, 1),
            (70, 40, 9, 10, 3, 1),
            (33, 50, 6, 7, 1, 1),
            (16, 31, 14, 13, 3, 2),
            (40, 20, 9, 8, 3, 2),
        ] {
            let g = Int8Geom {
                cin,
                h,
                w,
                size,
                stride,
                pad: size / 2,
            };
            let (ho, wo) = (
                (h + 2 * g.pad - size) / stride + 1,
                (w + 2 * g.pad - size) / stride + 1,
            );
            let x: Vec<f32> = (0..cin * h * w).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let k: Vec<f32> = (0..cout * cin * size * size)
                .map(|_| rng.uniform(-0.5, 0.5))
                .collect();
            let round = |v: &[f32]| -> Vec<f32> {
                v.iter()
                    .map(|&v| f32::from_bits((to_bf16(v) as u32) << 16))
                    .collect()
            };
            let conv = Bf16Conv::new(&k, cout, cin, size).expect("bf16 is available");
            let mut got = vec![f32::NAN; cout * ho * wo];
            assert!(conv.forward_fused(&x, g, &mut got, None, &mut F32Scratch::default()));
            for (reference, what, tol) in [
                (
                    conv_f32(&round(&x), &round(&k), cout, g),
                    "rounded operands",
                    1e-4,
                ),
                (conv_f32(&x, &k, cout, g), "f32", 2e-2),
            ] {
                let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
                let err = got
                    .iter()
                    .zip(&reference)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    err <= tol * scale,
                    "{cin}->{cout} k{size} vs {what}: {err} of {scale}"
                );
            }
            // Stride 3 is refused, not computed wrong.
            let g3 = Int8Geom { stride: 3, ..g };
            assert!(!conv.forward_fused(&x, g3, &mut got, None, &mut F32Scratch::default()));
        }
    }
}
