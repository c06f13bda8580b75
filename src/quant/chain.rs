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

use super::direct::{Block, DirectGeom, Run, PIXELS};
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

/// A chained conv's output: an f32 map, the next conv's planes, or both (the map has other
/// readers).
#[derive(Default)]
pub(crate) struct ChainOut<'a> {
    /// `[cout, ho·wo]` f32.
    pub map: Option<&'a mut [f32]>,
    pub planes: Option<PlanesOut<'a>>,
}

impl<'a> ChainOut<'a> {
    /// Just an f32 map.
    pub fn map(dst: &'a mut [f32]) -> Self {
        ChainOut {
            map: Some(dst),
            ..ChainOut::default()
        }
    }

    /// Just the next conv's planes.
    #[cfg(test)]
    pub fn planes(x: &'a mut [u32], spec: PlanesSpec, inv: f32) -> Self {
        ChainOut {
            planes: Some(PlanesOut { x, spec, inv }),
            ..ChainOut::default()
        }
    }
}

/// The next conv's planes, values quantized as `round(v · inv)` (clamped to ±127) + 128.
pub(crate) struct PlanesOut<'a> {
    pub x: &'a mut [u32],
    pub spec: PlanesSpec,
    pub inv: f32,
}

/// How one conv call turns 32-bit sums into its outputs, four channels at a time: f32 values
/// (bias, activation) into u8 quads of the next conv's planes and, where asked, channel maps.
#[derive(Clone, Copy)]
pub(crate) struct Emit<'a> {
    epi: Option<Epilogue<'a>>,
    leaky: bool,
    /// Quantizing into planes with this `1 / scale`.
    inv: f32,
}

impl<'a> Emit<'a> {
    /// None where this CPU lacks AVX-512 or the activation is neither linear nor leaky (then the
    /// conv is not chained).
    pub fn new(epi: Option<Epilogue<'a>>, inv: f32) -> Option<Emit<'a>> {
        let act = epi.map(|e| e.activation);
        let ok = matches!(act, None | Some(Activation::Linear | Activation::Leaky));
        (ok && super::int8::vnni_available()).then_some(Emit {
            epi,
            leaky: act == Some(Activation::Leaky),
            inv,
        })
    }

    /// Channels `b.o..b.o + b.rows` of one block, four at a time, into this task's segments of
    /// the channel maps (`maps[c]`, none when empty) and of the quads' planes (`quads[q]`, none
    /// when empty); returns the largest |value| quantized. `sums(channel)` says what a
    /// channel's sums are (int8 sums only: the bf16 convs are not chained).
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub fn block(
        &self,
        b: &Block,
        maps: &mut [&mut [f32]],
        quads: &mut [&mut [u32]],
        sums: impl Fn(usize) -> Sums,
    ) -> f32 {
        let to_map = !maps.is_empty();
        let mut seen = 0f32;
        for k in 0..b.rows.div_ceil(4) {
            let c0 = b.o + 4 * k;
            let present = (b.rows - 4 * k).min(4);
            let mut quad = Quad {
                sums: [&b.acc[4 * k]; 4],
                offset: [0; 4],
                scale: [0.0; 4],
                bias: self.epi.map(|_| [0.0; 4]),
                present,
            };
            for j in 0..present {
                quad.sums[j] = &b.acc[4 * k + j];
                (quad.offset[j], quad.scale[j]) = match sums(c0 + j) {
                    Sums::Int8 { offset, scale } => (offset, scale),
                    Sums::F32 => unreachable!("only int8 convs are chained"),
                };
                if let (Some(bias), Some(e)) = (quad.bias.as_mut(), self.epi) {
                    bias[j] = e.bias[c0 + j];
                }
            }
            let four = match to_map {
                true => &mut maps[c0..c0 + present],
                false => &mut [][..],
            };
            let (words, inv) = (&mut *quads[c0 / 4], self.inv);
            // SAFETY: `Emit::new` found avx512f and avx512bw (in `vnni_available`).
            let m = unsafe {
                match (self.leaky, to_map) {
                    (true, true) => quad_runs::<true, true>(&quad, inv, b.runs, four, words),
                    (true, false) => quad_runs::<true, false>(&quad, inv, b.runs, four, words),
                    (false, true) => quad_runs::<false, true>(&quad, inv, b.runs, four, words),
                    (false, false) => quad_runs::<false, false>(&quad, inv, b.runs, four, words),
                }
            };
            seen = seen.max(m);
        }
        seen
    }
}

/// Four channels of a block (`present` of them real, the rest written as 128 = 0): sums, the
/// int8 offset and scale of each, their biases (None without epilogue).
pub(crate) struct Quad<'a> {
    pub sums: [&'a [i32; PIXELS]; 4],
    pub offset: [i32; 4],
    pub scale: [f32; 4],
    pub bias: Option<[f32; 4]>,
    pub present: usize,
}

/// For each run, 16 lanes at a time (masked at the end): each present channel's value exactly
/// as the f32 epilogue computes it (`int8::vnni::finish`: int subtract, convert, multiply, add
/// the bias, leaky as max(v, 0.1·v)), stored into its map (`MAP`: `maps[j]` for channel j);
/// and quantized exactly as the planes of an f32 map are (`int8::quad_row_avx512`), the four
/// bytes or-ed into a word of `quads`. Returns the largest |value| quantized (NaN ignored).
///
/// # Safety
/// The CPU has avx512f and avx512bw.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) fn quad_runs<const LEAKY: bool, const MAP: bool>(
    q: &Quad,
    inv: f32,
    runs: &[Run],
    maps: &mut [&mut [f32]],
    quads: &mut [u32],
) -> f32 {
    use std::arch::x86_64::*;
    let n = q.present;
    assert!((1..=4).contains(&n) && (!MAP || maps.len() >= n));
    let (scale, lo, hi, half, tenth) = (
        _mm512_set1_ps(inv),
        _mm512_set1_ps(-127.0),
        _mm512_set1_ps(127.0),
        _mm512_set1_ps(128.5),
        _mm512_set1_ps(0.1),
    );
    let abs_mask = _mm512_set1_epi32(0x7fff_ffff);
    let missing = (n..4).fold(0i32, |w, j| w | (128 << (8 * j)));
    // Each value read on its own, as it was stored: the caller has just written them one by one,
    // and the one 64-byte load the compiler otherwise makes of the struct cannot be forwarded
    // from those stores (it waited for them to retire: 20 % of this function's samples on a
    // first layer's blocks). SAFETY: each pointer is a reference to a live field.
    let one = |v: &i32| unsafe { std::ptr::read_volatile(v) };
    let onef = |v: &f32| unsafe { std::ptr::read_volatile(v) };
    let off: [__m512i; 4] = std::array::from_fn(|j| _mm512_set1_epi32(one(&q.offset[j])));
    let scl: [__m512; 4] = std::array::from_fn(|j| _mm512_set1_ps(onef(&q.scale[j])));
    let bias: [__m512; 4] =
        std::array::from_fn(|j| _mm512_set1_ps(q.bias.as_ref().map_or(0.0, |b| onef(&b[j]))));
    let mut seen = _mm512_setzero_ps();
    for r in runs {
        assert!(r.lane + r.len <= PIXELS);
        if MAP {
            assert!(maps[..n].iter().all(|m| r.at + r.len <= m.len()));
        }
        assert!(r.at2 + r.len <= quads.len());
        let mut i = 0;
        while i < r.len {
            let m = super::int8::lane_mask(r.len - i);
            let mut word = _mm512_set1_epi32(missing);
            for j in 0..n {
                // SAFETY (the masked loads and stores): lanes lane + i.. under the mask end by
                // lane + len ≤ 32, and outputs at + i.. (at2 + i..) by at + len (at2 + len) ≤
                // the length of the map (planes) they index (asserted).
                let s = unsafe { _mm512_maskz_loadu_epi32(m, q.sums[j].as_ptr().add(r.lane + i)) };
                let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s, off[j])), scl[j]);
                if q.bias.is_some() {
                    v = _mm512_add_ps(v, bias[j]);
                }
                if LEAKY {
                    v = _mm512_max_ps(v, _mm512_mul_ps(v, tenth));
                }
                if MAP {
                    unsafe { _mm512_mask_storeu_ps(maps[j].as_mut_ptr().add(r.at + i), m, v) };
                }
                let a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), abs_mask));
                // Lanes under the mask only; max(a, seen) answers `seen` where a is NaN.
                seen = _mm512_mask_max_ps(seen, m, a, seen);
                let v = _mm512_mul_ps(v, scale);
                let b = _mm512_cvttps_epi32(_mm512_add_ps(
                    _mm512_min_ps(_mm512_max_ps(v, lo), hi),
                    half,
                ));
                let shift = _mm512_set1_epi32(8 * j as i32);
                word = _mm512_or_si512(word, _mm512_sllv_epi32(b, shift));
            }
            unsafe {
                _mm512_mask_storeu_epi32(quads.as_mut_ptr().add(r.at2 + i) as *mut _, m, word)
            };
            i += 16;
        }
    }
    _mm512_reduce_max_ps(seen)
}

/// `dst = a + b` over `[c, h, w]` maps — the sums an unweighted linear shortcut computes, bit
/// for bit — and the sums quantized into the next conv's planes in the same pass, each quad of
/// channels row by row while its rows are in cache (the next conv would otherwise read the map
/// twice more: for its maximum and to pack it). Returns the largest |sum|; None (nothing
/// written) when the maps or planes are too short.
pub(crate) fn add_into_planes(
    a: &[f32],
    b: &[f32],
    (c, h, w): (usize, usize, usize),
    dst: &mut [f32],
    out: PlanesOut,
) -> Option<f32> {
    use rayon::prelude::*;
    let (hw, spec) = (h * w, out.spec);
    let ws = spec.dg.word_stride();
    let fits = spec.fits(h, w, c) && out.x.len() >= spec.len;
    if !fits || a.len() < c * hw || b.len() < c * hw || dst.len() < c * hw {
        return None;
    }
    let quads = c.div_ceil(4);
    let seen = dst[..c * hw]
        .par_chunks_mut(4 * hw)
        .zip(out.x[..quads * ws].par_chunks_mut(ws))
        .enumerate()
        .map(|(q, (sums, plane))| {
            let (c0, present) = (4 * q, (c - 4 * q).min(4));
            let (a, b) = (
                &a[c0 * hw..(c0 + present) * hw],
                &b[c0 * hw..(c0 + present) * hw],
            );
            let sums = &mut sums[..present * hw];
            add_quad((a, b, sums), (hw, w), out.inv, &spec, plane)
        })
        .reduce(|| 0.0, f32::max);
    Some(seen)
}

/// A residual add for up to four channels (`a`, `b`, `sums`: the quad's maps of `hw` values
/// each, rows of `w`): the sums over the quad's maps in one pass with their largest |value|,
/// then the words of each row quantized with `inv` (as `int8::quad_row` packs them; a missing
/// channel is 128) into `plane` at the rows of `spec`.
fn add_quad(
    (a, b, sums): (&[f32], &[f32], &mut [f32]),
    (hw, w): (usize, usize),
    inv: f32,
    spec: &PlanesSpec,
    plane: &mut [u32],
) -> f32 {
    let present = sums.len() / hw;
    let seen = add_max(a, b, sums);
    for y in 0..hw / w.max(1) {
        let at = spec.dg.position(y + spec.pad, spec.pad);
        let rows: [Option<&[f32]>; 4] =
            std::array::from_fn(|j| (j < present).then(|| &sums[j * hw + y * w..][..w]));
        super::int8::quad_row(rows, inv, &mut plane[at..at + w]);
    }
    seen
}

/// `dst = a + b` and max |dst|, 16 lanes at a time where the CPU has AVX-512.
fn add_max(a: &[f32], b: &[f32], dst: &mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f was found at run time.
        return unsafe { add_max_avx512(a, b, dst) };
    }
    add_max_portable(a, b, dst)
}

#[inline(always)]
fn add_max_portable(a: &[f32], b: &[f32], dst: &mut [f32]) -> f32 {
    let mut m = [0f32; 16];
    let n = dst.len().min(a.len()).min(b.len());
    let (dst, a, b) = (&mut dst[..n], &a[..n], &b[..n]);
    let full = n / 16 * 16;
    for ((d, x), z) in dst[..full]
        .chunks_exact_mut(16)
        .zip(a[..full].chunks_exact(16))
        .zip(b[..full].chunks_exact(16))
    {
        for j in 0..16 {
            d[j] = x[j] + z[j];
            let v = d[j].abs();
            m[j] = if v > m[j] { v } else { m[j] };
        }
    }
    for i in full..n {
        dst[i] = a[i] + b[i];
        let v = dst[i].abs();
        m[0] = if v > m[0] { v } else { m[0] };
    }
    m.into_iter().fold(0f32, |a, b| if b > a { b } else { a })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn add_max_avx512(a: &[f32], b: &[f32], dst: &mut [f32]) -> f32 {
    add_max_portable(a, b, dst)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::quant::int8::{max_abs, quantize_planes, Int8Conv, Int8Geom, Scratch};

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

    /// `conv.forward_chained` with a fresh scratch.
    fn run(
        c: &Int8Conv,
        x: ChainIn,
        xs: f32,
        g: Int8Geom,
        out: ChainOut,
        e: Option<Epilogue>,
    ) -> f32 {
        c.forward_chained(x, xs, g, out, e, &mut Scratch::default())
            .unwrap()
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
    fn chain_case(
        c: [usize; 4],
        (h, w): (usize, usize),
        sizes: [usize; 3],
        (stride_a, stride_b): (usize, usize),
    ) {
        if Emit::new(None, 1.0).is_none()
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
        let gb = geom(c[1], h1, w1, sizes[1], stride_b);
        let (h2, w2) = (
            (h1 + 2 * gb.pad - sizes[1]) / stride_b + 1,
            (w1 + 2 * gb.pad - sizes[1]) / stride_b + 1,
        );
        let gc = geom(c[2], h2, w2, sizes[2], 1);
        let (n1, n) = (h1 * w1, h2 * w2);
        let x = values(c[0] * h * w, &mut seed);
        // Unchained.
        let mut a = vec![f32::NAN; c[1] * n1];
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
            let out = ChainOut::planes(&mut pb, sb, 1.0 / xa);
            let seen = run(&convs[0], ChainIn::F32(&x), xs0, ga, out, epi(0));
            assert_eq!(seen, ma, "A's reported maximum");
            let mut packed = sb.new_planes();
            quantize_planes(&a, gb, 1.0 / xa, &sb.dg, &mut packed);
            assert_eq!(pb, packed, "A's planes (squeeze {squeeze})");
            let mut pc = sc.new_planes();
            let out = ChainOut::planes(&mut pc, sc, 1.0 / xb);
            let seen = run(&convs[1], ChainIn::Planes(&pb), xa, gb, out, epi(1));
            // With a squeezed input scale B's values differ from the unchained ones: compare
            // against B run unchained on A's map but with that same input scale.
            let mut b_same = vec![f32::NAN; c[2] * n];
            let out = ChainOut::map(&mut b_same);
            run(&convs[1], ChainIn::F32(&a), xa, gb, out, epi(1));
            assert_eq!(seen, max_abs(&b_same), "B's reported maximum");
            let mut packed = sc.new_planes();
            quantize_planes(&b_same, gc, 1.0 / xb, &sc.dg, &mut packed);
            assert_eq!(pc, packed, "B's planes (squeeze {squeeze})");
            let mut got = vec![f32::NAN; c[3] * n];
            let out = ChainOut::map(&mut got);
            run(&convs[2], ChainIn::Planes(&pc), xb, gc, out, epi(2));
            if squeeze == 1.0 {
                assert_eq!(got, want, "C's outputs");
            } else {
                let mut c_same = vec![f32::NAN; c[3] * n];
                let out = ChainOut::map(&mut c_same);
                run(&convs[2], ChainIn::F32(&b_same), xb, gc, out, epi(2));
                assert_eq!(got, c_same, "C's outputs, clamped inputs");
            }
        }
    }

    #[test]
    fn chained_int8_convs_write_what_the_next_conv_would_pack() {
        // 1×1 → 3×3 → 1×1 as in a YOLO head; odd widths, channels not multiples of 4 or 32.
        chain_case([8, 19, 37, 5], (13, 11), [1, 3, 1], (1, 1));
        chain_case([3, 40, 64, 33], (17, 20), [3, 3, 1], (2, 1));
        chain_case([16, 32, 64, 32], (9, 9), [3, 1, 3], (1, 1));
        // A stride-2 reader (regrouping the planes into its phase planes): even and odd sides.
        chain_case([3, 17, 50, 25], (24, 30), [3, 3, 1], (1, 2));
        chain_case([8, 21, 30, 9], (13, 11), [1, 3, 3], (1, 2));
        // Many channel groups on a small map: split by groups over the threads.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| chain_case([8, 200, 140, 5], (9, 9), [1, 3, 1], (1, 1)));
    }

    /// The residual add that feeds a chain writes the shortcut layer's exact sums to its map
    /// and, in the same pass, exactly the planes the next conv packs from them.
    #[test]
    fn a_residual_add_writes_its_sums_and_the_planes_of_them() {
        let next = Int8Conv::new(&[0.1f32; 8 * 19 * 9], 8, 19, 3);
        let Some(spec) = next.planes_spec(geom(19, 13, 11, 3, 1)) else {
            return println!("no direct int8 kernel here: nothing chained (nothing to compare)");
        };
        let mut seed = 5;
        let (a, b) = (
            values(19 * 13 * 11, &mut seed),
            values(19 * 13 * 11, &mut seed),
        );
        // What the shortcut layer computes for one unweighted input: 1·a + 1·b.
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        for squeeze in [1.0, 0.5] {
            let inv = 127.0 / (squeeze * max_abs(&want));
            let (mut sums, mut planes) = (vec![f32::NAN; want.len()], spec.new_planes());
            let out = PlanesOut {
                x: &mut planes,
                spec,
                inv,
            };
            let seen = add_into_planes(&a, &b, (19, 13, 11), &mut sums, out).unwrap();
            assert_eq!(sums, want);
            assert_eq!(seen, max_abs(&want));
            let mut packed = spec.new_planes();
            quantize_planes(&want, geom(19, 13, 11, 3, 1), inv, &spec.dg, &mut packed);
            assert_eq!(planes, packed, "squeeze {squeeze}");
        }
        let mut short = vec![0.0; 10];
        let out = PlanesOut {
            x: &mut [],
            spec,
            inv: 1.0,
        };
        assert!(add_into_planes(&a, &b, (19, 13, 11), &mut short, out).is_none());
    }

    #[test]
    fn planes_of_a_conv_that_cannot_chain_are_refused() {
        let k = vec![0.1f32; 8 * 4 * 9];
        let conv = Int8Conv::new(&k, 8, 4, 3);
        assert!(conv.planes_spec(geom(4, 8, 8, 3, 3)).is_none(), "stride 3");
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
        let out = ChainOut::planes(&mut planes, spec, 1.0);
        let x = vec![0.5f32; 4 * 9 * 9];
        let err = producer.forward_chained(
            ChainIn::F32(&x),
            0.01,
            geom(4, 9, 9, 1, 1),
            out,
            None,
            &mut Scratch::default(),
        );
        assert!(err.is_err());
    }
}
