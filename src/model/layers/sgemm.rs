//! The CPU f32 fast path's two primitives: borrowing a tensor's values without a copy, and one
//! GEMM written straight into a caller's buffer (no per-layer temporary tensors).

use candle_core::{CpuStorage, Error, Result, Storage, Tensor};

/// Runs `f` on the values of a contiguous CPU f32 tensor, borrowed from its storage; any other
/// tensor (strided, another dtype or device) is copied once first.
pub(crate) fn with_f32<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    {
        let (storage, layout) = x.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            if let Some(s) = v.get(start..end) {
                return f(s);
            }
        }
    }
    let v: Vec<f32> = x.flatten_all()?.to_vec1()?;
    f(&v)
}

/// The first `len` values of a scratch buffer, grown with `fill` when short and never shrunk (a
/// shorter tile followed by a longer one must not pay for refilling): callers overwrite what
/// they use.
pub(crate) fn grown<T: Copy>(v: &mut Vec<T>, len: usize, fill: T) -> &mut [T] {
    grown_at_least(v, len, len, fill)
}

/// As [`grown`], growing to at least `floor` values on the first growth: a per-thread buffer
/// whose size depends on which task its thread happens to run first stops growing after one
/// allocation (steady frames allocate nothing whichever thread runs what).
pub(crate) fn grown_at_least<T: Copy>(
    v: &mut Vec<T>,
    len: usize,
    floor: usize,
    fill: T,
) -> &mut [T] {
    if v.len() < len {
        v.resize(len.max(floor), fill);
    }
    &mut v[..len]
}

/// The longest any pool thread's scratch of one kind has grown (see
/// [`crate::model::layers::warm_thread_scratch`]): which thread runs which task changes from
/// frame to frame, so after the first frame of a size every thread grows its own to this, and
/// no later frame finds one short.
pub(crate) struct Mark(std::sync::atomic::AtomicUsize);

impl Mark {
    pub const fn new() -> Mark {
        Mark(std::sync::atomic::AtomicUsize::new(0))
    }

    /// [`grown_at_least`], noting how long `v` now is.
    pub fn grown<'v, T: Copy>(
        &self,
        v: &'v mut Vec<T>,
        len: usize,
        floor: usize,
        fill: T,
    ) -> &'v mut [T] {
        if v.len() < len {
            self.note(len.max(floor));
        }
        grown_at_least(v, len, floor, fill)
    }

    /// Notes a buffer grown some other way (`reserve` and `push`) to `len`.
    pub fn note(&self, len: usize) {
        self.0.fetch_max(len, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reserves room in (empty or cleared) `v` for the most any thread's has held.
    pub fn warm_capacity<T>(&self, v: &mut Vec<T>) {
        v.reserve(self.0.load(std::sync::atomic::Ordering::Relaxed));
    }

    /// Grows `v` to the longest any thread's has grown.
    pub fn warm<T: Copy>(&self, v: &mut Vec<T>, fill: T) {
        let most = self.0.load(std::sync::atomic::Ordering::Relaxed);
        if v.len() < most {
            v.resize(most, fill);
        }
    }
}

/// `dst[m×n] = a[m×k] · b[k×n]` for `(m, n, k)` (or `+=` when `accumulate`), all row-major and dense, on `threads`
/// threads (0 or 1: this thread). Errors, never panics, when a slice is too short for its shape.
pub(crate) fn sgemm(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    dst: &mut [f32],
    accumulate: bool,
    threads: usize,
) -> Result<()> {
    if a.len() < m * k || b.len() < k * n || dst.len() < m * n {
        return Err(Error::Msg(format!(
            "sgemm {m}x{k}·{k}x{n}: slices of {}, {}, {} values are too short",
            a.len(),
            b.len(),
            dst.len()
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return Ok(());
    }
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the checks above guarantee every element gemm touches lies inside the slices:
    // dst spans (m-1)·n + (n-1) < m·n ≤ dst.len() with column stride 1 and row stride n; a spans
    // (m-1)·k + (k-1) < a.len(); b spans (k-1)·n + (n-1) < b.len(). `dst` is a unique borrow,
    // so it aliases neither `a` nor `b`; dst's old values (read only when accumulating) are
    // initialised f32s inside the same checked span.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}

/// One output buffer written by several rayon tasks at once, each in ranges of its own (a
/// conv's bands of output channels, a GEMM's column blocks): what the tasks share in place of
/// the `&mut` borrow, which it holds for as long as it lives.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut<'a> {
    ptr: *mut f32,
    len: usize,
    _buf: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a SharedOut only hands out its buffer through `segment` and `sgemm_cols`, whose
// callers promise that no two tasks' ranges overlap; the buffer stays borrowed while it lives.
unsafe impl Send for SharedOut<'_> {}
unsafe impl Sync for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    pub fn new(buf: &'a mut [f32]) -> Self {
        SharedOut {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buf: std::marker::PhantomData,
        }
    }

    /// The buffer's start and length, for kernels that store through masked vector writes
    /// spread over rows that other tasks also write (each element still written by one task).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn raw(self) -> (*mut f32, usize) {
        (self.ptr, self.len)
    }

    /// `len` values from `start` (panics when out of the buffer).
    ///
    /// # Safety
    /// No other live slice or write from this buffer overlaps the range.
    pub unsafe fn segment(self, start: usize, len: usize) -> &'a mut [f32] {
        assert!(start + len <= self.len, "output segment out of range");
        // SAFETY: in bounds (asserted); exclusive (the caller's contract).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// Columns `c0..c1` of `dst[m×n] = a[m×k] · b[k×n]` (row-major, dense), single-threaded: the
/// column blocks of one product handed to different tasks, each packing only its own part of
/// `b` (a row split packs all of `b` once per task). Panics when a slice is short for its shape.
///
/// # Safety
/// No other task writes, or holds a slice of, columns `c0..c1` of `dst` meanwhile.
pub(crate) unsafe fn sgemm_cols(
    (m, n, k): (usize, usize, usize),
    (c0, c1): (usize, usize),
    a: &[f32],
    b: &[f32],
    dst: SharedOut<'_>,
) {
    assert!(c0 <= c1 && c1 <= n && a.len() >= m * k && b.len() >= k * n && dst.len >= m * n);
    if m == 0 || c1 == c0 || k == 0 {
        return;
    }
    // SAFETY: every element gemm touches is dst[r·n + c], a[r·k + p], b[p·n + c] with r < m,
    // p < k, c0 ≤ c < c1 ≤ n: inside the m·n, m·k and k·n values (asserted); the columns are
    // this call's alone (caller).
    unsafe {
        gemm::gemm(
            m,
            c1 - c0,
            k,
            dst.ptr.add(c0),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr().add(c0),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Whether an `m×k · k×n` GEMM is worth splitting over threads: below 2 Mi multiply-adds a
/// hand-off costs more than it saves.
pub(crate) fn worth_splitting(m: usize, n: usize, k: usize) -> bool {
    m * n * k >= 1 << 21
}

/// Rows per block when an `m×k · k×n` GEMM is split over the rows of its output on up to
/// `threads` threads: `m` itself (no split) when the work is too small to pay for a hand-off or
/// there are too few rows; blocks are multiples of 8 rows (gemm's register tile works in such
/// groups), so the last block may be shorter.
pub(crate) fn row_block(m: usize, n: usize, k: usize, threads: usize) -> usize {
    const ROW_ALIGN: usize = 8;
    let parts = threads.min(m / ROW_ALIGN);
    if parts <= 1 || !worth_splitting(m, n, k) {
        return m.max(1);
    }
    m.div_ceil(parts).div_ceil(ROW_ALIGN) * ROW_ALIGN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::random::SplitMix64;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut d = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                d[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        d
    }

    #[test]
    fn sgemm_matches_naive_on_odd_shapes() {
        let mut rng = SplitMix64::new(3);
        for &(m, n, k) in &[
            (1, 1, 1),
            (7, 13, 5),
            (33, 17, 65),
            (16, 100, 27),
            (3, 1, 9),
            (50, 300, 147),
            (64, 2704, 27),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            for threads in [1, 2, 3] {
                let mut d = vec![f32::NAN; m * n];
                sgemm((m, n, k), &a, &b, &mut d, false, threads).unwrap();
                let want = naive(m, n, k, &a, &b);
                let err = |d: &[f32], off: f32| {
                    d.iter()
                        .zip(&want)
                        .map(|(x, y)| (x - off - y).abs())
                        .fold(0.0, f32::max)
                };
                assert!(
                    err(&d, 0.0) < 1e-4,
                    "{m}x{n}x{k}: max diff {}",
                    err(&d, 0.0)
                );
                // Accumulating onto 0.5 everywhere adds exactly that offset.
                let mut d = vec![0.5f32; m * n];
                sgemm((m, n, k), &a, &b, &mut d, true, threads).unwrap();
                assert!(err(&d, 0.5) < 1e-4, "{m}x{n}x{k} accumulate");
            }
        }
    }

    #[test]
    fn column_blocks_write_their_columns_only() {
        let mut rng = SplitMix64::new(9);
        let (m, n, k) = (13, 70, 33);
        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let want = naive(m, n, k, &a, &b);
        let mut d = vec![f32::NAN; m * n];
        for (c0, c1) in [(0, 16), (16, 17), (17, 64), (64, 70)] {
            // SAFETY: one block at a time, nothing else borrowing d meanwhile.
            unsafe { sgemm_cols((m, n, k), (c0, c1), &a, &b, SharedOut::new(&mut d)) };
            for (i, (&x, &y)) in d.iter().zip(&want).enumerate() {
                let c = i % n;
                if c < c1 {
                    assert!(
                        (x - y).abs() < 1e-4,
                        "({}, {c}) after block {c0}..{c1}",
                        i / n
                    );
                } else {
                    assert!(x.is_nan(), "column {c} written by block {c0}..{c1}");
                }
            }
        }
    }

    #[test]
    fn row_blocks_cover_the_rows_in_multiples_of_eight() {
        assert_eq!(row_block(64, 10, 10, 2), 64, "too little work: no split");
        assert_eq!(row_block(12, 4096, 1152, 2), 12, "too few rows: no split");
        assert_eq!(row_block(64, 4096, 1152, 1), 64);
        assert_eq!(row_block(64, 4096, 1152, 2), 32);
        assert_eq!(row_block(50, 4096, 1152, 2), 32);
        assert_eq!(row_block(255, 4096, 1152, 3), 88);
        assert_eq!(row_block(0, 0, 0, 2), 1);
    }

    #[test]
    fn sgemm_rejects_short_slices() {
        let mut d = vec![0.0; 3];
        assert!(sgemm((2, 2, 2), &[0.0; 4], &[0.0; 4], &mut d, false, 1).is_err());
    }

    #[test]
    fn with_f32_reads_strided_tensors_too() {
        let t = Tensor::arange(0f32, 6.0, &candle_core::Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let s = with_f32(&t.t().unwrap(), |v| Ok(v.to_vec())).unwrap();
        assert_eq!(s, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let s = with_f32(&t, |v| Ok(v.to_vec())).unwrap();
        assert_eq!(s, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }
}
