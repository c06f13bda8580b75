//! An int8 convolution that beats f32 on CPUs with AVX-512 VNNI: weights int8 with one scale per
//! output channel, the input map quantized once per call with one scale (dynamic, symmetric,
//! stored as u8 = q + 128), an im2col that packs four consecutive K values per 32-bit lane, and
//! `vpdpbusd` (64 u8×i8 products per instruction) accumulating in i32.
//!
//! Candle's `QMatMul` (Q8_0) computes one dot product per (pixel, output channel) with AVX2 and a
//! float rescale every 32 values, which loses to the f32 GEMM on large convs; this kernel keeps
//! the integers in registers over the whole K. Without VNNI the portable loop gives the same
//! numbers (tests compare them), just slowly, and the per-layer plan then keeps f32.

use rayon::prelude::*;

/// Output pixels per packed block (two 16-lane vectors).
const BLOCK: usize = 32;
/// Output channels per register tile of the kernel.
const ROWS: usize = 8;

/// A conv's weights ready for the int8 kernel.
pub struct Int8Conv {
    cout: usize,
    /// Reduction length rounded up to a multiple of 4 (one 32-bit lane).
    k4: usize,
    /// `[cout][k4 / 4]`: four int8 weights per i32 (little-endian, K order c, ky, kx).
    w: Vec<i32>,
    /// Per output channel: max|w| / 127.
    scale: Vec<f32>,
    /// Per output channel: Σ w (int8), to remove the +128 offset of the u8 inputs.
    row_sum: Vec<i32>,
}

/// Conv geometry of one call (input plane and kernel).
#[derive(Debug, Clone, Copy)]
pub struct Int8Geom {
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub size: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Int8Geom {
    fn out_hw(&self) -> (usize, usize) {
        let ho = (self.h + 2 * self.pad).saturating_sub(self.size) / self.stride + 1;
        let wo = (self.w + 2 * self.pad).saturating_sub(self.size) / self.stride + 1;
        (ho, wo)
    }
}

/// Whether this CPU runs the VNNI kernel (otherwise the portable loop, for correctness only).
pub fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Int8Conv {
    /// Quantizes a BN-folded `[cout, k]` f32 kernel, one symmetric scale per output channel.
    pub fn new(kernel: &[f32], cout: usize, k: usize) -> Int8Conv {
        let k4 = k.div_ceil(4) * 4;
        let mut w = Vec::with_capacity(cout * k4 / 4);
        let mut scale = Vec::with_capacity(cout);
        let mut row_sum = Vec::with_capacity(cout);
        for row in kernel.chunks(k).take(cout) {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 1.0 };
            let q: Vec<i8> = (0..k4)
                .map(|i| {
                    row.get(i)
                        .map_or(0, |v| (v / s).round().clamp(-127.0, 127.0) as i8)
                })
                .collect();
            row_sum.push(q.iter().map(|&v| v as i32).sum());
            w.extend(
                q.chunks(4)
                    .map(|c| i32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8])),
            );
            scale.push(s);
        }
        Int8Conv {
            cout,
            k4,
            w,
            scale,
            row_sum,
        }
    }

    /// Conv without bias of one `[cin, h, w]` plane into `dst` = `[cout, ho·wo]`.
    pub fn forward(&self, plane: &[f32], g: Int8Geom, dst: &mut [f32]) {
        let (ho, wo) = g.out_hw();
        let n = ho * wo;
        let max = plane.iter().fold(0f32, |m, v| m.max(v.abs()));
        let xs = if max > 0.0 { max / 127.0 } else { 1.0 };
        let q = quantize_plane(plane, xs);
        let blocks = n.div_ceil(BLOCK);
        let kq = self.k4 / 4;
        let mut packed = vec![128u8; blocks * kq * BLOCK * 4];
        pack(&q, g, self.k4, &mut packed);
        let use_vnni = vnni_available();
        // One task per block of pixels: [cout][BLOCK] results, then scattered into dst rows.
        let mut tiles = vec![0f32; blocks * self.cout * BLOCK];
        tiles
            .par_chunks_mut(self.cout * BLOCK)
            .zip(packed.par_chunks(kq * BLOCK * 4))
            .for_each(|(tile, xb)| self.block(xb, xs, use_vnni, tile));
        for (b, tile) in tiles.chunks(self.cout * BLOCK).enumerate() {
            let p0 = b * BLOCK;
            let len = BLOCK.min(n - p0);
            for (o, row) in tile.chunks(BLOCK).enumerate() {
                dst[o * n + p0..o * n + p0 + len].copy_from_slice(&row[..len]);
            }
        }
    }

    /// All output channels of one pixel block.
    fn block(&self, xb: &[u8], xs: f32, use_vnni: bool, tile: &mut [f32]) {
        let kq = self.k4 / 4;
        let mut o = 0;
        while o < self.cout {
            let rows = ROWS.min(self.cout - o);
            let w = &self.w[o * kq..(o + rows) * kq];
            let mut acc = [[0i32; BLOCK]; ROWS];
            if use_vnni {
                #[cfg(target_arch = "x86_64")]
                vnni::tile(xb, w, kq, rows, &mut acc);
            } else {
                portable_tile(xb, w, kq, rows, &mut acc);
            }
            for r in 0..rows {
                let oc = o + r;
                let f = xs * self.scale[oc];
                let offset = 128 * self.row_sum[oc];
                let dst = &mut tile[oc * BLOCK..(oc + 1) * BLOCK];
                for (d, a) in dst.iter_mut().zip(acc[r]) {
                    *d = (a - offset) as f32 * f;
                }
            }
            o += rows;
        }
    }
}

/// u8 = round(x / scale) + 128, clamped to the symmetric int8 range.
fn quantize_plane(plane: &[f32], scale: f32) -> Vec<u8> {
    let inv = 1.0 / scale;
    plane
        .iter()
        .map(|v| ((v * inv).round().clamp(-127.0, 127.0) as i32 + 128) as u8)
        .collect()
}

/// im2col into `[block][K/4][BLOCK pixels][4]`; padding (and K beyond the kernel) is 128 = 0.
fn pack(q: &[u8], g: Int8Geom, k4: usize, packed: &mut [u8]) {
    let (ho, wo) = g.out_hw();
    let n = ho * wo;
    let kq = k4 / 4;
    let (k, s, p) = (g.size, g.stride as isize, g.pad as isize);
    let block_len = kq * BLOCK * 4;
    packed
        .par_chunks_mut(block_len)
        .enumerate()
        .for_each(|(b, dst)| {
            for lane in 0..BLOCK {
                let pix = b * BLOCK + lane;
                if pix >= n {
                    break;
                }
                let (oy, ox) = ((pix / wo) as isize, (pix % wo) as isize);
                let mut ki = 0;
                for c in 0..g.cin {
                    let ch = &q[c * g.h * g.w..(c + 1) * g.h * g.w];
                    for ky in 0..k as isize {
                        let iy = oy * s + ky - p;
                        for kx in 0..k as isize {
                            let ix = ox * s + kx - p;
                            if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                dst[((ki / 4) * BLOCK + lane) * 4 + ki % 4] =
                                    ch[iy as usize * g.w + ix as usize];
                            }
                            ki += 1;
                        }
                    }
                }
            }
        });
}

/// Reference kernel: the same integer sums as the VNNI one, any CPU.
fn portable_tile(xb: &[u8], w: &[i32], kq: usize, rows: usize, acc: &mut [[i32; BLOCK]; ROWS]) {
    for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
        let wr = &w[r * kq..(r + 1) * kq];
        for (q, &wq) in wr.iter().enumerate() {
            let wb = wq.to_le_bytes().map(|b| b as i8 as i32);
            let xq = &xb[q * BLOCK * 4..(q + 1) * BLOCK * 4];
            for (a, x) in acc_r.iter_mut().zip(xq.chunks_exact(4)) {
                *a += (0..4).map(|j| x[j] as i32 * wb[j]).sum::<i32>();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{BLOCK, ROWS};
    use std::arch::x86_64::*;

    /// `acc[r][lane] = Σ_k x[k][lane]·w[r][k]` with `vpdpbusd`, two 16-lane vectors per row.
    pub(super) fn tile(
        xb: &[u8],
        w: &[i32],
        kq: usize,
        rows: usize,
        acc: &mut [[i32; BLOCK]; ROWS],
    ) {
        assert!(xb.len() >= kq * BLOCK * 4 && w.len() >= rows * kq && rows <= ROWS);
        // SAFETY: the caller checked avx512f + avx512vnni at run time (`vnni_available`), and
        // the lengths asserted above bound every load in `tile_vnni`.
        unsafe { tile_vnni(xb, w, kq, rows, acc) }
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn tile_vnni(
        xb: &[u8],
        w: &[i32],
        kq: usize,
        rows: usize,
        acc: &mut [[i32; BLOCK]; ROWS],
    ) {
        let mut a = [[_mm512_setzero_si512(); 2]; ROWS];
        let x = xb.as_ptr();
        for q in 0..kq {
            // SAFETY: q·128 + 128 ≤ kq·BLOCK·4 ≤ xb.len() (asserted by `tile`).
            let (x0, x1) = unsafe {
                (
                    _mm512_loadu_si512(x.add(q * 128) as *const _),
                    _mm512_loadu_si512(x.add(q * 128 + 64) as *const _),
                )
            };
            for (r, ar) in a.iter_mut().enumerate().take(rows) {
                let wv = _mm512_set1_epi32(w[r * kq + q]);
                ar[0] = _mm512_dpbusd_epi32(ar[0], x0, wv);
                ar[1] = _mm512_dpbusd_epi32(ar[1], x1, wv);
            }
        }
        for (r, ar) in a.iter().enumerate().take(rows) {
            let dst = acc[r].as_mut_ptr();
            // SAFETY: acc[r] holds 32 i32 = two 64-byte vectors.
            unsafe {
                _mm512_storeu_si512(dst as *mut _, ar[0]);
                _mm512_storeu_si512(dst.add(16) as *mut _, ar[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Direct f32 conv, the reference.
    fn conv_f32(x: &[f32], k: &[f32], cout: usize, g: Int8Geom) -> Vec<f32> {
        let (ho, wo) = g.out_hw();
        let mut out = vec![0f32; cout * ho * wo];
        for o in 0..cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = 0f32;
                    for c in 0..g.cin {
                        for ky in 0..g.size {
                            for kx in 0..g.size {
                                let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w {
                                    continue;
                                }
                                let xi = (c * g.h + iy as usize) * g.w + ix as usize;
                                let ki = ((o * g.cin + c) * g.size + ky) * g.size + kx;
                                s += x[xi] * k[ki];
                            }
                        }
                    }
                    out[(o * ho + oy) * wo + ox] = s;
                }
            }
        }
        out
    }

    fn case(cin: usize, cout: usize, h: usize, w: usize, size: usize, stride: usize) {
        let mut seed = (cin * 31 + cout * 7 + h) as u64;
        let g = Int8Geom {
            cin,
            h,
            w,
            size,
            stride,
            pad: size / 2,
        };
        let x: Vec<f32> = (0..cin * h * w).map(|_| lcg(&mut seed)).collect();
        let k: Vec<f32> = (0..cout * cin * size * size)
            .map(|_| lcg(&mut seed))
            .collect();
        let want = conv_f32(&x, &k, cout, g);
        let conv = Int8Conv::new(&k, cout, cin * size * size);
        let mut got = vec![0f32; want.len()];
        conv.forward(&x, g, &mut got);
        let max = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = want
            .iter()
            .zip(&got)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 0.02 * max,
            "cin {cin} cout {cout} {h}x{w} k{size}/{stride}: max err {err} of {max}"
        );
        // The portable loop and the VNNI kernel give the very same integers.
        let kq = conv.k4 / 4;
        let (ho, wo) = g.out_hw();
        let blocks = (ho * wo).div_ceil(BLOCK);
        let mut packed = vec![128u8; blocks * kq * BLOCK * 4];
        pack(&quantize_plane(&x, 0.01), g, conv.k4, &mut packed);
        let rows = ROWS.min(cout);
        let (mut a, mut b) = ([[0i32; BLOCK]; ROWS], [[0i32; BLOCK]; ROWS]);
        portable_tile(&packed[..kq * BLOCK * 4], &conv.w, kq, rows, &mut a);
        if vnni_available() {
            #[cfg(target_arch = "x86_64")]
            vnni::tile(&packed[..kq * BLOCK * 4], &conv.w, kq, rows, &mut b);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn int8_conv_is_within_2_percent_of_f32_on_odd_shapes() {
        case(3, 16, 13, 11, 3, 1);
        case(19, 10, 9, 9, 3, 2);
        case(64, 33, 7, 5, 1, 1);
        case(5, 9, 40, 3, 3, 1);
    }
}
