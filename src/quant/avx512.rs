//! The AVX-512 engine of the direct int8 and bf16 convs (`super::direct`), for x86 CPUs without
//! AMX: VNNI `vpdpbusd` (64 u8 × s8 products per instruction) for int8 and AVX512-BF16
//! `vdpbf16ps` (32 bf16 products, f32 sums) for bf16. It reads the same padded planes and the
//! same packed weights as the tiles do and hands over the same 32 × 32 blocks of sums.
//!
//! Register blocking: 8 output channels × 32 pixels (16 accumulators) per pass; each K word costs
//! two 64-byte activation loads and 8 weight broadcasts (folded into the dot-product
//! instructions) for 16 dot products.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::direct::TileOp;
#[cfg(target_arch = "x86_64")]
use super::direct::{block_order, DirectGeom, DirectWeights, COUT_GROUP, PIXELS};

/// Output channels per register pass.
const CHANNELS: usize = 8;

/// Whether this CPU runs `op` in AVX-512 registers (`KESTREL_AVX512=0` turns it off).
pub(crate) fn available(op: TileOp) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if std::env::var("KESTREL_AVX512").as_deref() == Ok("0") {
            return false;
        }
        let base = has!("avx512f") && has!("avx512bw");
        match op {
            TileOp::Int8 => base && has!("avx512vnni"),
            TileOp::Bf16 => base && has!("avx512bf16"),
            TileOp::F32 => base,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = op;
        false
    }
}

/// [`DirectWeights::run`] in registers (bounds checked there).
#[cfg(target_arch = "x86_64")]
pub(super) fn run_regs(
    d: &DirectWeights,
    x: &[u32],
    g: &DirectGeom,
    (b0, b1): (usize, usize),
    (g0, g1): (usize, usize),
    mut block: impl FnMut(usize, usize, usize, &[[i32; PIXELS]; COUT_GROUP]),
) {
    let mut acc = [[0i32; PIXELS]; COUT_GROUP];
    let end = (g1 * COUT_GROUP).min(d.cout);
    // A group's weights (590 KB in f32 for 512 → 1024 3×3) are read once per run of blocks
    // from L2 (`direct::block_order`), and the run's planes (≤ 1 MB) stay in L2 over the groups.
    for (b, o) in block_order(b0..b1, g0 * COUT_GROUP..end, BLOCK_RUN) {
        let rows = COUT_GROUP.min(d.cout - o);
        for pass in 0..rows.div_ceil(CHANNELS) {
            let c0 = o + pass * CHANNELS;
            let out = &mut acc[pass * CHANNELS..(pass + 1) * CHANNELS];
            let out: &mut [[i32; PIXELS]; CHANNELS] = out.try_into().expect("8 rows");
            // SAFETY: the engine is Avx512 only where `available(d.op)` found the
            // instructions; `DirectWeights::run` checked that `x` holds every word a block
            // reads, and channel pass c0 reads weight words of its 16-channel group only.
            unsafe {
                match d.op {
                    TileOp::Int8 => pass_int8(d, x, g, b * PIXELS, c0, out),
                    TileOp::Bf16 => pass_bf16(d, x, g, b * PIXELS, c0, out),
                    TileOp::F32 => pass_f32(d, x, g, b * PIXELS, c0, out),
                }
            }
        }
        block(b, o, rows, &acc);
    }
}

/// Blocks a task runs group after group (see `direct::block_order`).
const BLOCK_RUN: usize = 16;

/// Defines one register pass: sums of channels `c0..c0 + 8` over the 32 padded pixels from `p0`
/// into `out`, with accumulator type `$acc`, its zero `$zero`, dot product `$dot(acc, x, w)` and
/// store as i32 lanes `$bits`.
macro_rules! register_pass {
    ($(#[$doc:meta])* $name:ident, $features:literal, $acc:ty, $zero:expr, $dot:path, $bits:path) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU has the features named; `x` holds every word the pass reads (see
        /// `DirectWeights::run`); `c0` is a multiple of 8 below the packed channel groups.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(
            d: &DirectWeights,
            x: &[u32],
            g: &DirectGeom,
            p0: usize,
            c0: usize,
            out: &mut [[i32; PIXELS]; CHANNELS],
        ) {
            use std::arch::x86_64::*;
            let (cq, stride) = (d.chunk_q, g.word_stride());
            // This pass's 8 rows of its 16-channel group: row r of step s, word q at
            // s·16·cq + r·cq + q (steps = taps · chunks).
            let w = &d.w[(c0 / 16) * d.group_len() + (c0 % 16) * cq..];
            assert!(w.len() >= (d.size * d.size * d.chunks - 1) * 16 * cq + CHANNELS * cq);
            let mut a: [[$acc; 2]; CHANNELS] = [[$zero; 2]; CHANNELS];
            // Chunk after chunk, every tap of a chunk in turn: one chunk's 16 channel words of
            // planes around the block (≤ 16 × 3 rows × 3 lines, 9 KB) stay in L1 over its taps;
            // taps outside (all chunks per tap) re-read every plane from L2 once per tap.
            let taps = d.size * d.size;
            for j in 0..d.chunks {
                for t in 0..taps {
                    let shift = p0 + g.position(t / d.size, t % d.size);
                    // Step (t, j) of the packed group: 16 rows of cq words.
                    let ws = w.as_ptr().wrapping_add((t * d.chunks + j) * 16 * cq);
                    for q in 0..cq {
                        let at = shift + (j * cq + q) * stride;
                        // SAFETY: words at..at + 32 lie in `x` (the function's contract);
                        // weight words r·cq + q < 8·cq of this step lie in `w` (asserted).
                        unsafe {
                            let p = x.as_ptr().add(at);
                            let x0 = _mm512_loadu_si512(p as *const _);
                            let x1 = _mm512_loadu_si512(p.add(16) as *const _);
                            for (r, ar) in a.iter_mut().enumerate() {
                                let wv = _mm512_set1_epi32(*ws.add(r * cq + q));
                                ar[0] = $dot(ar[0], x0, wv);
                                ar[1] = $dot(ar[1], x1, wv);
                            }
                        }
                    }
                }
            }
            for (ar, dst) in a.iter().zip(out.iter_mut()) {
                let p = dst.as_mut_ptr() as *mut __m512i;
                // SAFETY: a row of 32 i32 is two 64-byte vectors.
                unsafe {
                    _mm512_storeu_si512(p, $bits(ar[0]));
                    _mm512_storeu_si512(p.add(1), $bits(ar[1]));
                }
            }
        }
    };
}

register_pass!(
    /// int8: u8 activations × s8 weights, i32 sums (`vpdpbusd`, exact).
    pass_int8,
    "avx512f,avx512bw,avx512vnni",
    __m512i,
    _mm512_setzero_si512(),
    _mm512_dpbusd_epi32,
    as_i32_lanes
);

register_pass!(
    /// bf16 pairs, f32 sums (`vdpbf16ps`), handed over as f32 bits.
    pass_bf16,
    "avx512f,avx512bw,avx512bf16",
    __m512,
    _mm512_setzero_ps(),
    dot_bf16,
    _mm512_castps_si512
);

register_pass!(
    /// f32: one product per word (`vfmadd231ps`), handed over as f32 bits.
    pass_f32,
    "avx512f,avx512bw",
    __m512,
    _mm512_setzero_ps(),
    fma_words,
    _mm512_castps_si512
);

/// `acc + x · w` on words of f32 bits held as integer vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn fma_words(
    acc: std::arch::x86_64::__m512,
    x: std::arch::x86_64::__m512i,
    w: std::arch::x86_64::__m512i,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    _mm512_fmadd_ps(_mm512_castsi512_ps(x), _mm512_castsi512_ps(w), acc)
}

/// i32 sums are already i32 lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn as_i32_lanes(v: std::arch::x86_64::__m512i) -> std::arch::x86_64::__m512i {
    v
}

/// `vdpbf16ps` on words of bf16 pairs held as integer vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
fn dot_bf16(
    acc: std::arch::x86_64::__m512,
    x: std::arch::x86_64::__m512i,
    w: std::arch::x86_64::__m512i,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // SAFETY: both are 64-byte vectors of plain bits; __m512bh is 32 bf16 lanes of them.
    let (x, w) = unsafe {
        (
            std::mem::transmute::<__m512i, __m512bh>(x),
            std::mem::transmute::<__m512i, __m512bh>(w),
        )
    };
    _mm512_dpbf16_ps(acc, x, w)
}
