//! Int8 activations kept between int8 convs: a conv whose only reader is the next int8 conv
//! writes its outputs already quantized, as u8 channel quads, straight into that conv's padded
//! planes, instead of an f32 map that the next conv reads back, scans for its maximum and packs.
//! On the pruned nets those two passes over every f32 map cost as much as the dot products.
//!
//! The next conv's scale must be known before its input exists, so it is calibrated: the planned
//! forward runs the first frame of each input size unchained and keeps each chained input's
//! largest |value| (exactly the scale the unchained conv chose), and every chained conv reports
//! the largest |value| it quantized (before clamping), which widens the scale for the frames
//! after — a running min/max calibration over the frames seen, as ONNX Runtime's static
//! quantization does over its calibration set. Values above the scale are clamped, as there.

// Off x86_64 there is no direct int8 kernel, so nothing is chained (`planes_spec` is None).
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]

use super::direct::{DirectGeom, Run, COUT_GROUP, PIXELS};
use super::int8::{Epilogue, Sums, ZERO_WORD};
use crate::model::Activation;

/// Where a chained int8 conv reads its input: stride-1 padded planes of channel quads (see
/// `super::direct::DirectGeom`), `len` words in all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanesSpec {
    pub dg: DirectGeom,
    pub pad: usize,
    pub len: usize,
}

impl PlanesSpec {
    /// Whether a conv writing `cout` channels of `ho × wo` fills these planes exactly.
    pub fn fits(&self, ho: usize, wo: usize, cout: usize) -> bool {
        let quads = cout.div_ceil(4) * self.dg.word_stride();
        self.dg.stride == 1
            && self.dg.hp == ho + 2 * self.pad
            && self.dg.wp == wo + 2 * self.pad
            && quads <= self.len
    }

    /// Planes ready to be written: every word zero (u8 128) — the padding and the words past
    /// the real channels are never written afterwards, so they stay zero from frame to frame.
    pub fn new_planes(&self) -> Vec<u32> {
        vec![ZERO_WORD; self.len]
    }
}

/// A chained conv's input.
pub(crate) enum ChainIn<'a> {
    /// An f32 map, quantized by the conv.
    F32(&'a [f32]),
    /// Planes the conv before wrote (see [`PlanesSpec`]).
    Planes(&'a [u32]),
}

/// A chained conv's output.
pub(crate) enum ChainOut<'a> {
    /// `[cout, ho·wo]` f32.
    F32(&'a mut [f32]),
    /// The next conv's planes, values quantized as `round(v · inv)` (clamped to ±127) + 128.
    Planes {
        x: &'a mut [u32],
        spec: PlanesSpec,
        inv: f32,
    },
}

/// How one conv call turns 32-bit sums into u8 quads of the next conv's planes.
#[derive(Clone, Copy)]
pub(crate) struct Quantize<'a> {
    epi: Option<Epilogue<'a>>,
    leaky: bool,
    inv: f32,
}

impl<'a> Quantize<'a> {
    /// None where this CPU lacks AVX-512 or the activation is neither linear nor leaky (then the
    /// conv is not chained).
    pub fn new(epi: Option<Epilogue<'a>>, inv: f32) -> Option<Quantize<'a>> {
        let act = epi.map(|e| e.activation);
        let ok = matches!(act, None | Some(Activation::Linear | Activation::Leaky));
        (ok && super::int8::vnni_available()).then_some(Quantize {
            epi,
            leaky: act == Some(Activation::Leaky),
            inv,
        })
    }

    /// The quads of channels `o..o + rows` of one block (`acc[r]` = channel o + r, `o` a
    /// multiple of 32) into this task's segments of the quads' planes (`segs[q]` = quad q);
    /// returns the largest |value| before clamping. `sums(channel)` says what a channel's
    /// sums are.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub fn quads(
        &self,
        o: usize,
        rows: usize,
        acc: &[[i32; PIXELS]; COUT_GROUP],
        runs: &[Run],
        segs: &mut [&mut [u32]],
        sums: impl Fn(usize) -> Sums,
    ) -> f32 {
        let mut seen = 0f32;
        for k in 0..rows.div_ceil(4) {
            let chans: [Option<Channel>; 4] = std::array::from_fn(|j| {
                let r = 4 * k + j;
                (r < rows).then(|| Channel {
                    sums: &acc[r],
                    kind: sums(o + r),
                    bias: self.epi.map(|e| e.bias[o + r]),
                })
            });
            // SAFETY: `Quantize::new` found avx512f and avx512bw (in `vnni_available`).
            let m = unsafe { quad_runs(&chans, self.leaky, self.inv, runs, segs[o / 4 + k]) };
            seen = seen.max(m);
        }
        seen
    }
}

/// One channel of a quad: its block of sums, what they are, its bias (None without epilogue).
#[derive(Clone, Copy)]
pub(crate) struct Channel<'a> {
    pub sums: &'a [i32; PIXELS],
    pub kind: Sums,
    pub bias: Option<f32>,
}

/// For each run, 16 lanes at a time (masked at the end): each present channel's value exactly
/// as the f32 epilogue computes it (`int8::vnni::finish`), quantized exactly as the planes of an
/// f32 map are (`int8::quad_row_avx512`), the four bytes or-ed into a word (a missing channel
/// is 128 = 0). Returns the largest |value| (NaN ignored).
///
/// # Safety
/// The CPU has avx512f and avx512bw.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) fn quad_runs(
    chans: &[Option<Channel>; 4],
    leaky: bool,
    inv: f32,
    runs: &[Run],
    out: &mut [u32],
) -> f32 {
    use std::arch::x86_64::*;
    let (scale, lo, hi, half, tenth) = (
        _mm512_set1_ps(inv),
        _mm512_set1_ps(-127.0),
        _mm512_set1_ps(127.0),
        _mm512_set1_ps(128.5),
        _mm512_set1_ps(0.1),
    );
    let abs_mask = _mm512_set1_epi32(0x7fff_ffff);
    let mut seen = _mm512_setzero_ps();
    for r in runs {
        assert!(r.lane + r.len <= PIXELS && r.at + r.len <= out.len());
        let mut i = 0;
        while i < r.len {
            let m: __mmask16 = if r.len - i >= 16 {
                0xFFFF
            } else {
                (1u16 << (r.len - i)) - 1
            };
            let mut word = _mm512_setzero_si512();
            for (j, c) in chans.iter().enumerate() {
                let q = match c {
                    // SAFETY: lanes lane + i.. under the mask end by lane + len ≤ 32 (asserted).
                    Some(c) => unsafe {
                        let s = _mm512_maskz_loadu_epi32(m, c.sums.as_ptr().add(r.lane + i));
                        let v = match c.kind {
                            Sums::Int8 { offset, scale } => _mm512_mul_ps(
                                _mm512_cvtepi32_ps(_mm512_sub_epi32(s, _mm512_set1_epi32(offset))),
                                _mm512_set1_ps(scale),
                            ),
                            Sums::F32 => _mm512_castsi512_ps(s),
                        };
                        let mut v = match c.bias {
                            Some(b) => _mm512_add_ps(v, _mm512_set1_ps(b)),
                            None => v,
                        };
                        if leaky {
                            v = _mm512_max_ps(v, _mm512_mul_ps(v, tenth));
                        }
                        let a =
                            _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), abs_mask));
                        // Lanes under the mask only; max(a, seen) answers `seen` where a is NaN.
                        seen = _mm512_mask_max_ps(seen, m, a, seen);
                        let v = _mm512_mul_ps(v, scale);
                        _mm512_cvttps_epi32(_mm512_add_ps(
                            _mm512_min_ps(_mm512_max_ps(v, lo), hi),
                            half,
                        ))
                    },
                    None => _mm512_set1_epi32(128),
                };
                word = _mm512_or_si512(word, _mm512_sllv_epi32(q, _mm512_set1_epi32(8 * j as i32)));
            }
            // SAFETY: outputs at + i.. under the mask end by at + len ≤ out.len() (asserted).
            unsafe { _mm512_mask_storeu_epi32(out.as_mut_ptr().add(r.at + i) as *mut _, m, word) };
            i += 16;
        }
    }
    _mm512_reduce_max_ps(seen)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::quant::int8::{max_abs, quantize_planes, Int8Conv, Int8Geom};

    fn values(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn geom(cin: usize, h: usize, w: usize, size: usize, stride: usize) -> Int8Geom {
        Int8Geom {
            cin,
            h,
            w,
            size,
            stride,
            pad: size / 2,
        }
    }

    /// A → B → C, each conv's output fed to the next either as an f32 map (the unchained
    /// forward) or as planes: the planes hold exactly the words the next conv packs from the
    /// f32 map, the reported maximum is the map's, and the last conv's outputs are the same
    /// bits — also when the scale is too small and values clamp.
    fn chain_case(c: [usize; 4], (h, w): (usize, usize), sizes: [usize; 3], stride_a: usize) {
        if Quantize::new(None, 1.0).is_none()
            || crate::quant::direct::Engine::for_op(crate::quant::direct::TileOp::Int8).is_none()
        {
            println!("no AVX-512 VNNI here: int8 convs are not chained (nothing to compare)");
            return;
        }
        let mut seed = (c[0] * 131 + c[1] * 17 + h) as u64;
        let convs: Vec<Int8Conv> = (0..3)
            .map(|i| {
                let k = values(c[i + 1] * c[i] * sizes[i] * sizes[i], &mut seed);
                Int8Conv::new(&k, c[i + 1], c[i], sizes[i])
            })
            .collect();
        let biases: Vec<Vec<f32>> = (0..3).map(|i| values(c[i + 1], &mut seed)).collect();
        let epi = |i: usize| {
            Some(Epilogue {
                bias: &biases[i],
                activation: if i == 1 {
                    Activation::Linear
                } else {
                    Activation::Leaky
                },
            })
        };
        let ga = geom(c[0], h, w, sizes[0], stride_a);
        let (h1, w1) = (
            (h + 2 * ga.pad - sizes[0]) / stride_a + 1,
            (w + 2 * ga.pad - sizes[0]) / stride_a + 1,
        );
        let gb = geom(c[1], h1, w1, sizes[1], 1);
        let gc = geom(c[2], h1, w1, sizes[2], 1);
        let n = h1 * w1;
        let x = values(c[0] * h * w, &mut seed);
        // Unchained.
        let mut a = vec![f32::NAN; c[1] * n];
        convs[0].forward_fused(&x, ga, &mut a, epi(0));
        let mut b = vec![f32::NAN; c[2] * n];
        convs[1].forward_fused(&a, gb, &mut b, epi(1));
        let mut want = vec![f32::NAN; c[3] * n];
        convs[2].forward_fused(&b, gc, &mut want, epi(2));
        for squeeze in [1.0f32, 0.5] {
            let (sb, sc) = (
                convs[1].planes_spec(gb).unwrap(),
                convs[2].planes_spec(gc).unwrap(),
            );
            let (ma, mb) = (max_abs(&a), max_abs(&b));
            let (xa, xb) = (squeeze * ma / 127.0, squeeze * mb / 127.0);
            let mut pb = sb.new_planes();
            let xs0 = max_abs(&x) / 127.0;
            let out = ChainOut::Planes {
                x: &mut pb,
                spec: sb,
                inv: 1.0 / xa,
            };
            let seen = convs[0]
                .forward_chained(ChainIn::F32(&x), xs0, ga, out, epi(0))
                .unwrap();
            assert_eq!(seen, ma, "A's reported maximum");
            let mut packed = sb.new_planes();
            quantize_planes(&a, gb, 1.0 / xa, &sb.dg, &mut packed);
            assert_eq!(pb, packed, "A's planes (squeeze {squeeze})");
            let mut pc = sc.new_planes();
            let out = ChainOut::Planes {
                x: &mut pc,
                spec: sc,
                inv: 1.0 / xb,
            };
            let seen = convs[1]
                .forward_chained(ChainIn::Planes(&pb), xa, gb, out, epi(1))
                .unwrap();
            // With a squeezed input scale B's values differ from the unchained ones: compare
            // against B run unchained on A's map but with that same input scale.
            let mut b_same = vec![f32::NAN; c[2] * n];
            let out = ChainOut::F32(&mut b_same);
            convs[1]
                .forward_chained(ChainIn::F32(&a), xa, gb, out, epi(1))
                .unwrap();
            assert_eq!(seen, max_abs(&b_same), "B's reported maximum");
            let mut packed = sc.new_planes();
            quantize_planes(&b_same, gc, 1.0 / xb, &sc.dg, &mut packed);
            assert_eq!(pc, packed, "B's planes (squeeze {squeeze})");
            let mut got = vec![f32::NAN; c[3] * n];
            let out = ChainOut::F32(&mut got);
            convs[2]
                .forward_chained(ChainIn::Planes(&pc), xb, gc, out, epi(2))
                .unwrap();
            if squeeze == 1.0 {
                assert_eq!(got, want, "C's outputs");
            } else {
                let mut c_same = vec![f32::NAN; c[3] * n];
                let out = ChainOut::F32(&mut c_same);
                convs[2]
                    .forward_chained(ChainIn::F32(&b_same), xb, gc, out, epi(2))
                    .unwrap();
                assert_eq!(got, c_same, "C's outputs, clamped inputs");
            }
        }
    }

    #[test]
    fn chained_int8_convs_write_what_the_next_conv_would_pack() {
        // 1×1 → 3×3 → 1×1 as in a YOLO head; odd widths, channels not multiples of 4 or 32.
        chain_case([8, 19, 37, 5], (13, 11), [1, 3, 1], 1);
        chain_case([3, 40, 64, 33], (17, 20), [3, 3, 1], 2);
        chain_case([16, 32, 64, 32], (9, 9), [3, 1, 3], 1);
    }

    #[test]
    fn planes_of_a_conv_that_cannot_chain_are_refused() {
        let k = vec![0.1f32; 8 * 4 * 9];
        let conv = Int8Conv::new(&k, 8, 4, 3);
        assert!(conv.planes_spec(geom(4, 8, 8, 3, 2)).is_none(), "stride 2");
        assert!(
            conv.planes_spec(geom(12, 8, 8, 3, 1)).is_none(),
            "wrong channels"
        );
        let Some(spec) = conv.planes_spec(geom(4, 8, 8, 3, 1)) else {
            return println!("no direct int8 kernel here");
        };
        assert!(spec.fits(8, 8, 4) && !spec.fits(8, 9, 4) && !spec.fits(8, 8, 40));
        // A producer whose outputs do not fit the planes is an error, not a write past them.
        let producer = Int8Conv::new(&[0.1f32; 4 * 4], 4, 4, 1);
        let mut planes = spec.new_planes();
        let out = ChainOut::Planes {
            x: &mut planes,
            spec,
            inv: 1.0,
        };
        let x = vec![0.5f32; 4 * 9 * 9];
        let err = producer.forward_chained(ChainIn::F32(&x), 0.01, geom(4, 9, 9, 1, 1), out, None);
        assert!(err.is_err());
    }
}
