//! The f32 conv without im2col on CPUs with AVX-512: the same padded planes and register
//! blocking as the int8 and bf16 direct convs (`super::direct`), one f32 channel per word and
//! `vfmadd231ps` for the products. The im2col + GEMM path unfolds a 3×3 conv's input nine
//! times (a 26² layer of yolov3-tiny: a 9 MB matrix, which the GEMM then packs again); here
//! each tap is read straight from the planes. Full f32 precision — only the order of the sums
//! differs from the GEMM's. Used where it measured faster ([`wanted`]): the thin inputs.

// Off x86_64 there is no engine: `F32Direct::new` answers None there.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::direct::{DirectGeom, DirectWeights, SegBanks, TileOp};
use super::int8::{Epilogue, Int8Geom};

/// The buffers of a direct conv with f32 sums — this f32 conv, or the bf16 one (padded planes,
/// segment vectors) — kept by the caller between calls: the planned forward keeps one per input
/// size, so a steady frame allocates nothing whichever pool thread runs it.
#[derive(Default)]
pub(crate) struct F32Scratch {
    pub(super) planes: Vec<u32>,
    pub(super) segs: SegBanks,
}

/// Whether an f32 conv with `cin` input channels runs on this kernel: the thin inputs (≤ 16
/// channels, one K step per tap) by default, every width with `KESTREL_F32_DIRECT=1`, none with
/// `=0`. On the 2-core Sapphire-Rapids-class Xeon of docs/performance.md (whole nets, alternated
/// runs) it ran the RGB layers at 416² in 1.5 ms against im2col + GEMM's 2.1–2.3 (tiny), 3.0
/// against 4.1 (spp3), and tiny's 16 → 32 at 208² in 1.9 against 2.5; wider inputs lost to the
/// GEMM or to the channels-in-lanes kernel (spp3's 3×3 layers 111–149 against 124–152 GMAC/s).
pub(crate) fn wanted(cin: usize) -> bool {
    match std::env::var("KESTREL_F32_DIRECT").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        _ => cin <= 16,
    }
}

/// A conv's f32 weights packed for the direct kernel.
pub(crate) struct F32Direct {
    cout: usize,
    cin: usize,
    direct: DirectWeights,
}

impl F32Direct {
    /// From a BN-folded OIHW kernel (`[cout][cin·size²]`); `None` for 1×1 kernels, where this
    /// CPU has no AVX-512, or the kernel is not `cout·cin·size²` long.
    pub fn new(kernel: &[f32], cout: usize, cin: usize, size: usize) -> Option<F32Direct> {
        let taps = size * size;
        // 1×1: the GEMM reads the input planes as they are (no im2col to save).
        if size < 2 || kernel.len() != cout * cin * taps {
            return None;
        }
        let mut w = vec![0i32; cout * taps * cin];
        for o in 0..cout {
            for c in 0..cin {
                for t in 0..taps {
                    w[(o * taps + t) * cin + c] = kernel[(o * cin + c) * taps + t].to_bits() as i32;
                }
            }
        }
        Some(F32Direct {
            cout,
            cin,
            direct: DirectWeights::new(TileOp::F32, &w, cout, cin, size)?,
        })
    }

    /// Conv of one `[cin, h, w]` plane into `dst` = `[cout, ho·wo]`, then `epilogue`, with the
    /// caller's buffers; with `add`, the finished values are added to what `dst` holds (a
    /// residual add fused into the conv). Stride 1 or 2; returns false (nothing written) for
    /// anything else.
    pub fn forward_fused(
        &self,
        plane: &[f32],
        g: Int8Geom,
        dst: &mut [f32],
        (epilogue, add): (Option<Epilogue>, bool),
        scratch: &mut F32Scratch,
    ) -> bool {
        let hw = g.h * g.w;
        if g.cin != self.cin || plane.len() < g.cin * hw {
            return false;
        }
        let bufs = (&mut scratch.planes, &mut scratch.segs);
        conv_f32_sums(
            &self.direct,
            self.cout,
            g,
            dst,
            (epilogue, add),
            bufs,
            worth_it,
            |dg, x| {
                super::direct::fill_planes(dg, (g.h, g.w, g.pad), g.cin, 0, x, |c, y, out| {
                    let row = &plane[c * hw + y * g.w..][..g.w];
                    for (d, v) in out.iter_mut().zip(row) {
                        *d = v.to_bits();
                    }
                });
            },
        )
    }
}

/// The direct conv `d` (`cout` channels, f32 sums: f32 or bf16 words) of one input of geometry
/// `g` into `dst` = `[cout, ho·wo]` (or added to it, with `add`), then `epilogue`, with the
/// caller's planes and segment
/// vectors: `fill(dg, x)` writes every word of the planes. False (nothing written) for strides
/// other than 1 and 2, a map smaller than the kernel, a short `dst`, or where `accept` turns the
/// geometry down (`accept(dg, outputs)`).
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_f32_sums(
    d: &DirectWeights,
    cout: usize,
    g: Int8Geom,
    dst: &mut [f32],
    (epilogue, add): (Option<Epilogue>, bool),
    (planes, segs): (&mut Vec<u32>, &mut SegBanks),
    accept: impl Fn(&DirectGeom, usize) -> bool,
    fill: impl FnOnce(&DirectGeom, &mut [u32]),
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use super::int8::{Finish, Sums};
        use crate::model::layers::sgemm::grown;
        let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
        if !(1..=2).contains(&g.stride) || hp < g.size || wp < g.size {
            return false;
        }
        let (ho, wo) = ((hp - g.size) / g.stride + 1, (wp - g.size) / g.stride + 1);
        let dg = DirectGeom {
            hp,
            wp,
            ho,
            stride: g.stride,
        };
        if dst.len() < cout * ho * wo || !accept(&dg, ho * wo) {
            return false;
        }
        let x = grown(planes, d.input_words(&dg), 0);
        fill(&dg, x);
        let fin = Finish::new(epilogue).adding(add);
        d.conv_into(x, &dg, wo, &mut dst[..cout * ho * wo], segs, |b, segs| {
            fin.rows(b, segs, |_| Sums::F32)
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (d, cout, g, dst, epilogue, add, planes, segs, accept, fill);
        false
    }
}

/// Whether the direct kernel beats im2col + GEMM on this map: it computes whole blocks of 32
/// pixels over the padded width, which on a 13² map is 224 outputs for 169 kept, and there
/// the GEMM won (tiny's 512 → 1024 3×3: 167 against 100 GMAC/s); from 26² on (≥ 92 % kept) the
/// direct kernel won or tied (tiny's 3×3 layers at 416²–26²: 58 → 68, 112 → 148, 135 → 177,
/// 134 → 158 GMAC/s).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn worth_it(dg: &DirectGeom, outputs: usize) -> bool {
    outputs * 100 >= dg.blocks() * super::direct::PIXELS * 90
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::model::random::SplitMix64;
    use crate::quant::int8::tests::conv_f32;

    /// Against the plain reference conv of the int8 tests, on odd shapes: strides 1
    /// and 2, 1×1 to 5×5, channel counts that leave partial 16-channel groups and K chunks.
    #[test]
    fn direct_f32_conv_matches_the_reference_conv() {
        if F32Direct::new(&[0.0; 9], 1, 1, 3).is_none() {
            println!("no AVX-512 here: the f32 direct conv does not run (nothing to compare)");
            return;
        }
        let mut rng = SplitMix64::new(5);
        let mut sc = F32Scratch::default();
        for (cin, cout, h, w, size, stride) in [
            (3, 16, 34, 30, 3, 1),
            (20, 40, 60, 64, 3, 2),
            (33, 7, 30, 30, 3, 1),
            (8, 70, 31, 60, 5, 1),
            (17, 33, 40, 62, 3, 2),
        ] {
            let pad = size / 2;
            let kernel: Vec<f32> = (0..cout * cin * size * size)
                .map(|_| rng.uniform(-0.5, 0.5))
                .collect();
            let x: Vec<f32> = (0..cin * h * w).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let g = Int8Geom {
                cin,
                h,
                w,
                size,
                stride,
                pad,
            };
            let want = conv_f32(&x, &kernel, cout, g);
            let conv = F32Direct::new(&kernel, cout, cin, size).unwrap();
            let mut got = vec![f32::NAN; want.len()];
            assert!(
                conv.forward_fused(&x, g, &mut got, (None, false), &mut sc),
                "{g:?}"
            );
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "{g:?}: worst rel. diff {worst}");
            // Bias and leaky in the epilogue.
            let bias: Vec<f32> = (0..cout).map(|o| o as f32 * 0.01 - 0.2).collect();
            let epi = Epilogue {
                bias: &bias,
                activation: crate::model::Activation::Leaky,
            };
            assert!(conv.forward_fused(&x, g, &mut got, (Some(epi), false), &mut sc));
            let n = got.len() / cout;
            for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
                let v = b + bias[i / n];
                let v = if v > 0.0 { v } else { 0.1 * v };
                assert!(
                    (a - v).abs() <= 1e-5 * v.abs().max(1.0),
                    "{g:?} at {i}: {a} vs {v}"
                );
            }
            // Added: the same outputs plus what the destination held, bit for bit.
            crate::model::layers::assert_adds(&got, |sum| {
                conv.forward_fused(&x, g, sum, (Some(epi), true), &mut sc)
            });
        }
        // Refusals: stride 3, a plane too short.
        let conv = F32Direct::new(&[1.0; 9], 1, 1, 3).unwrap();
        let g = Int8Geom {
            cin: 1,
            h: 4,
            w: 4,
            size: 3,
            stride: 3,
            pad: 1,
        };
        assert!(!conv.forward_fused(&[0.0; 16], g, &mut [0.0; 16], (None, false), &mut sc));
        let g = Int8Geom { stride: 1, ..g };
        assert!(!conv.forward_fused(&[0.0; 15], g, &mut [0.0; 16], (None, false), &mut sc));
    }
}
