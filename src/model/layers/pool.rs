//! Darknet max-pool: window starts at `i·stride − padding/2`, taps outside the image ignored.

use super::ConvBackend;
use crate::model::MaxpoolCfg;
use candle_core::{Result, Tensor};

/// Output length of one axis.
fn out_len(n: usize, m: &MaxpoolCfg) -> usize {
    (n + m.padding - m.size) / m.stride + 1
}

/// Valid `[lo, hi)` range of output `o`'s window along an axis of length `n`.
fn window(o: usize, n: usize, m: &MaxpoolCfg) -> (usize, usize) {
    let start = o as isize * m.stride as isize - (m.padding / 2) as isize;
    let lo = start.max(0) as usize;
    let hi = ((start + m.size as isize).max(0) as usize).min(n);
    (lo.min(hi), hi)
}

/// Max along W of each of `rows` lines of length `w` into lines of length `wo` (strides above 1;
/// stride 1 is [`pool_stride1_slabs`]).
fn pool_rows(src: &[f32], rows: usize, w: usize, m: &MaxpoolCfg, dst: &mut [f32]) {
    let wo = out_len(w, m);
    for r in 0..rows {
        let line = &src[r * w..(r + 1) * w];
        for (o, d) in dst[r * wo..(r + 1) * wo].iter_mut().enumerate() {
            let (lo, hi) = window(o, w, m);
            *d = line[lo..hi].iter().copied().fold(f32::MIN, f32::max);
        }
    }
}

/// Max along H of `planes` `[h, wo]` planes: whole rows at a time (vectorisable, no transpose).
fn pool_cols(src: &[f32], planes: usize, h: usize, wo: usize, m: &MaxpoolCfg, dst: &mut [f32]) {
    let ho = out_len(h, m);
    for p in 0..planes {
        let plane = &src[p * h * wo..(p + 1) * h * wo];
        for oy in 0..ho {
            let d = &mut dst[(p * ho + oy) * wo..(p * ho + oy + 1) * wo];
            d.fill(f32::MIN);
            let (lo, hi) = window(oy, h, m);
            for row in plane[lo * wo..hi * wo].chunks_exact(wo) {
                d.iter_mut().zip(row).for_each(|(a, &b)| *a = gt_max(b, *a));
            }
        }
    }
}

/// A stride-1 pool (SPP's 5×5, 9×9, 13×13) of one `h × w` plane into `dst` (`ho × wo`) in
/// long slabs instead of row by row: on the 13² and 26² maps of the SPP blocks a row is 13 or 26
/// values and every per-row loop ran its scalar remainder. Along W, the rows are laid out with
/// `−∞` (f32::MIN) borders, `p = wo + size − 1` apart, so that each tap is one max over the whole
/// padded slab (the values computed between rows are dropped); along H each tap is one max over
/// a slab of whole rows. The taps in the same order onto the same f32::MIN start as the row
/// loops (NaN ignored the same way), so the same values.
fn pool_stride1_slabs(
    plane: &[f32],
    (h, w): (usize, usize),
    m: &MaxpoolCfg,
    buf: &mut Vec<f32>,
    dst: &mut [f32],
) {
    let (ho, wo, off, size) = (out_len(h, m), out_len(w, m), m.padding / 2, m.size);
    let p = wo + size - 1;
    let buf = ROWS_MARK.grown(buf, 2 * h * p + h * wo, POOL_SCRATCH_FLOOR, f32::MIN);
    let (padded, rest) = buf.split_at_mut(h * p);
    let (wide, rows) = rest.split_at_mut(h * p);
    // Input columns 0..w at padded positions off..off + w of each row; borders f32::MIN.
    for (prow, row) in padded.chunks_exact_mut(p).zip(plane.chunks_exact(w)) {
        prow.fill(f32::MIN);
        prow[off..off + w].copy_from_slice(row);
    }
    // Output x of a row reads padded x + t: one slab per tap.
    let span = h * p - (size - 1);
    wide[..span].fill(f32::MIN);
    for t in 0..size {
        wide[..span]
            .iter_mut()
            .zip(&padded[t..t + span])
            .for_each(|(a, &b)| *a = gt_max(b, *a));
    }
    for (r, wrow) in rows.chunks_exact_mut(wo).zip(wide.chunks(p)) {
        r.copy_from_slice(&wrow[..wo]);
    }
    // Along H: output row y reads rows y + t − off that exist, a contiguous run per tap.
    let dst = &mut dst[..ho * wo];
    dst.fill(f32::MIN);
    for t in 0..size as isize {
        let shift = t - off as isize;
        let lo = (-shift).max(0) as usize;
        let hi = ((h as isize - shift).max(0) as usize).min(ho);
        if lo >= hi {
            continue;
        }
        let from = (lo as isize + shift) as usize;
        dst[lo * wo..hi * wo]
            .iter_mut()
            .zip(&rows[from * wo..(from + hi - lo) * wo])
            .for_each(|(a, &b)| *a = gt_max(b, *a));
    }
}

/// 2×2 windows at stride 2 starting at (0, 0), taps past the border ignored: one pass per plane
/// reading two input rows per output row (the separable path wrote and re-read a half-size
/// scratch and looked each window up: 7 ms on yolov3-tiny's 16×416² map, now a fraction).
/// Planes are split over the rayon pool when the map is large.
fn pool_2x2_s2(src: &[f32], (h, w): (usize, usize), (ho, wo): (usize, usize), dst: &mut [f32]) {
    use rayon::prelude::*;
    const MIN_SPLIT: usize = 1 << 16;
    let one = |(plane, out): (&[f32], &mut [f32])| {
        for (oy, orow) in out.chunks_exact_mut(wo).enumerate() {
            let r0 = &plane[2 * oy * w..(2 * oy + 1) * w];
            let r1 = if 2 * oy + 1 < h {
                &plane[(2 * oy + 1) * w..(2 * oy + 2) * w]
            } else {
                r0 // a lone last row: max over it alone
            };
            let full = (w / 2).min(wo);
            let done = pair_max_rows(&mut orow[..full], r0, r1);
            orow[done..full]
                .iter_mut()
                .zip(
                    r0[2 * done..]
                        .chunks_exact(2)
                        .zip(r1[2 * done..].chunks_exact(2)),
                )
                .for_each(|(o, (a, b))| *o = gt_max(gt_max(a[0], a[1]), gt_max(b[0], b[1])));
            for (ox, o) in orow.iter_mut().enumerate().skip(full) {
                let (lo, hi) = ((2 * ox).min(w), (2 * ox + 2).min(w));
                *o = r0[lo..hi]
                    .iter()
                    .chain(&r1[lo..hi])
                    .copied()
                    .fold(f32::MIN, f32::max);
            }
        }
    };
    if src.len() >= MIN_SPLIT && rayon::current_num_threads() > 1 {
        src.par_chunks_exact(h * w)
            .zip(dst.par_chunks_exact_mut(ho * wo))
            .for_each(one);
    } else {
        src.chunks_exact(h * w)
            .zip(dst.chunks_exact_mut(ho * wo))
            .for_each(one);
    }
}

/// The leading 2×2 windows of two input rows in AVX-512 registers where the CPU has them (16
/// outputs per two rows of 32 values: a vertical max, then the even and odd lanes picked by two
/// permutes): the same maximum as [`gt_max`]'s order for any input without NaN. Returns how many
/// outputs it wrote; the rest is the caller's.
fn pair_max_rows(out: &mut [f32], r0: &[f32], r1: &[f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was found.
        return unsafe { pair_max_rows_avx512(out, r0, r1) };
    }
    let _ = (out, r0, r1);
    0
}

/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pair_max_rows_avx512(out: &mut [f32], r0: &[f32], r1: &[f32]) -> usize {
    use std::arch::x86_64::*;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let mut i = 0;
    while i + 16 <= out.len() && 2 * i + 32 <= r0.len().min(r1.len()) {
        // SAFETY: values 2i..2i + 32 of both rows and outputs i..i + 16 are in bounds (loop
        // condition).
        unsafe {
            let (p0, p1) = (r0.as_ptr().add(2 * i), r1.as_ptr().add(2 * i));
            // gt_max(a, b) = a > b ? a : b; maxps(x, y) = x > y ? x : y.
            let lo = _mm512_max_ps(_mm512_loadu_ps(p0), _mm512_loadu_ps(p1));
            let hi = _mm512_max_ps(_mm512_loadu_ps(p0.add(16)), _mm512_loadu_ps(p1.add(16)));
            let v = _mm512_max_ps(
                _mm512_permutex2var_ps(lo, even, hi),
                _mm512_permutex2var_ps(lo, odd, hi),
            );
            _mm512_storeu_ps(out.as_mut_ptr().add(i), v);
        }
        i += 16;
    }
    i
}

/// Darknet's `val > max ? val : max`: also what one `maxps` lane computes, so the 2×2 pool's
/// loop vectorizes (`f32::max` has NaN rules that need a compare and blend per lane).
#[inline(always)]
fn gt_max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

pub(crate) fn maxpool(x: &Tensor, m: &MaxpoolCfg, backend: ConvBackend) -> Result<Tensor> {
    match backend {
        ConvBackend::CpuIm2col => maxpool_cpu(x, m),
        ConvBackend::Candle => maxpool_tensor(x, m),
    }
}

/// Separable: along W into a scratch, then along H straight into the output. The 2×2/2 pool
/// of YOLO backbones has its own single pass.
fn maxpool_cpu(x: &Tensor, m: &MaxpoolCfg) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (ho, wo) = pooled_hw(h, w, m);
    let mut out = vec![0.0f32; b * c * ho * wo];
    super::sgemm::with_f32(x, |data| maxpool_into(data, (b, c, h, w), m, &mut out))?;
    Tensor::from_vec(out, (b, c, ho, wo), x.device())
}

/// Output (height, width) of `m` on an `h×w` map.
pub(crate) fn pooled_hw(h: usize, w: usize, m: &MaxpoolCfg) -> (usize, usize) {
    (out_len(h, m), out_len(w, m))
}

/// Darknet's max-pool of NCHW `src` (`dims` = b, c, h, w) into `dst` (every value written): the
/// slice form the planned CPU forward runs on its reused buffers.
pub(crate) fn maxpool_into(
    src: &[f32],
    (b, c, h, w): (usize, usize, usize, usize),
    m: &MaxpoolCfg,
    dst: &mut [f32],
) -> Result<()> {
    let (ho, wo) = pooled_hw(h, w, m);
    let (planes, out) = match (src.get(..b * c * h * w), dst.get_mut(..b * c * ho * wo)) {
        (Some(s), Some(d)) => (s, d),
        _ => {
            return Err(candle_core::Error::Msg(format!(
                "max-pool {b}x{c}x{h}x{w}: buffers of {} and {} values are too short",
                src.len(),
                dst.len()
            )))
        }
    };
    if m.size == 2 && m.stride == 2 && m.padding / 2 == 0 {
        pool_2x2_s2(planes, (h, w), (ho, wo), out);
        return Ok(());
    }
    let one = |(plane, dst): (&[f32], &mut [f32])| {
        let mut rows = ROWS.take();
        if m.stride == 1 {
            pool_stride1_slabs(plane, (h, w), m, &mut rows, dst);
        } else {
            let scratch = ROWS_MARK.grown(&mut rows, h * wo, POOL_SCRATCH_FLOOR, 0.0);
            pool_rows(plane, h, w, m, scratch);
            pool_cols(scratch, 1, h, wo, m, dst);
        }
        ROWS.set(rows);
    };
    if planes.len() >= 1 << 15 && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        planes
            .par_chunks_exact(h * w)
            .zip(out.par_chunks_exact_mut(ho * wo))
            .for_each(one);
    } else {
        planes
            .chunks_exact(h * w)
            .zip(out.chunks_exact_mut(ho * wo))
            .for_each(one);
    }
    Ok(())
}

/// Floats a pool thread's scratch grows to at least (256 KB): which thread pools which plane
/// changes from frame to frame, and a thread meeting a larger plane late must not allocate in a
/// steady frame.
const POOL_SCRATCH_FLOOR: usize = 1 << 16;

/// The longest a pool thread's `ROWS` has grown.
static ROWS_MARK: super::sgemm::Mark = super::sgemm::Mark::new();

/// Grows this thread's pool scratch to the longest any thread's has grown.
pub(crate) fn warm_thread() {
    let mut rows = ROWS.take();
    ROWS_MARK.warm(&mut rows, 0.0);
    ROWS.set(rows);
}

thread_local! {
    /// The W pass's scratch, per thread, reused frame after frame.
    static ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Edge replication equals −∞ padding for max; then Candle's unpadded pool.
fn maxpool_tensor(x: &Tensor, m: &MaxpoolCfg) -> Result<Tensor> {
    let (l, r) = (m.padding / 2, m.padding - m.padding / 2);
    let p = x.pad_with_same(2, l, r)?.pad_with_same(3, l, r)?;
    p.max_pool2d_with_stride(m.size, m.stride)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Reference straight from the Darknet loop.
    fn darknet_ref(x: &[f32], h: usize, w: usize, m: &MaxpoolCfg) -> Vec<f32> {
        let (ho, wo) = (out_len(h, m), out_len(w, m));
        let off = (m.padding / 2) as isize;
        let mut out = Vec::new();
        for i in 0..ho {
            for j in 0..wo {
                let mut best = f32::MIN;
                for n in 0..m.size as isize {
                    for k in 0..m.size as isize {
                        let y = i as isize * m.stride as isize - off + n;
                        let xx = j as isize * m.stride as isize - off + k;
                        if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                            best = best.max(x[y as usize * w + xx as usize]);
                        }
                    }
                }
                out.push(best);
            }
        }
        out
    }

    #[test]
    fn matches_darknet_with_negative_borders() {
        // All-negative values with the largest at the borders: zero padding would be wrong.
        // Odd height, then odd width (the 2×2/2 pass's lone last row and column).
        for (h, w) in [(7, 6), (6, 7)] {
            let x: Vec<f32> = (0..h * w)
                .map(|i| {
                    -10.0 - ((i * 7919) % 13) as f32
                        + if i % w == 0 || i / w == h - 1 {
                            5.0
                        } else {
                            0.0
                        }
                })
                .collect();
            let t = Tensor::from_slice(&x, (1, 1, h, w), &Device::Cpu).unwrap();
            for (size, stride, padding) in [
                (2, 2, 1),
                (2, 2, 0),
                (2, 1, 1),
                (5, 1, 4),
                (9, 1, 8),
                (13, 1, 12),
                (3, 2, 2),
            ] {
                let m = MaxpoolCfg {
                    size,
                    stride,
                    padding,
                };
                let want = darknet_ref(&x, h, w, &m);
                for backend in [ConvBackend::CpuIm2col, ConvBackend::Candle] {
                    let got: Vec<f32> = maxpool(&t, &m, backend)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    assert_eq!(got, want, "{size}/{stride}/{padding} {backend:?}");
                }
            }
        }
    }

    #[test]
    fn multi_plane_non_square_matches_darknet() {
        let mut rng = crate::model::random::SplitMix64::new(5);
        // A few planes, then an SPP-sized map with planes enough to split over the pool.
        // Widths around the 2×2 pass's 32-value vector blocks, odd and even heights.
        for (c, h, w) in [
            (3, 9, 14),
            (200, 13, 13),
            (2, 7, 31),
            (2, 6, 64),
            (3, 5, 67),
            (1, 4, 130),
        ] {
            multi_plane_case(&mut rng, (c, h, w));
        }
    }

    fn multi_plane_case(
        rng: &mut crate::model::random::SplitMix64,
        (c, h, w): (usize, usize, usize),
    ) {
        let x: Vec<f32> = (0..c * h * w).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let t = Tensor::from_slice(&x, (1, c, h, w), &Device::Cpu).unwrap();
        for (size, stride, padding) in [(2, 2, 0), (3, 2, 1), (5, 1, 4), (13, 1, 12)] {
            let m = MaxpoolCfg {
                size,
                stride,
                padding,
            };
            let want: Vec<f32> = x
                .chunks(h * w)
                .flat_map(|p| darknet_ref(p, h, w, &m))
                .collect();
            let got: Vec<f32> = maxpool(&t, &m, ConvBackend::CpuIm2col)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(got, want, "{size}/{stride}/{padding}");
        }
    }
}
