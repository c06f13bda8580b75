//! Synthetic scoring benchmark (`kestrel eval --bench-synthetic N`): VisDrone-DET-train sized
//! input, timing printed, never asserted.

use super::{ImageRecord, Row};

/// A small deterministic generator (no dependency needed for a benchmark).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` images of 1360×765 with ~60 GT, 2 ignored regions and 500 detections each.
pub fn synthetic_images(n: usize, dets_per_image: usize) -> Vec<ImageRecord> {
    let mut rng = Lcg(42);
    (0..n)
        .map(|i| {
            let (w, h) = (1360.0, 765.0);
            let mut gt: Vec<Row> = (0..60)
                .map(|_| {
                    let (bw, bh) = (8.0 + 60.0 * rng.next(), 8.0 + 60.0 * rng.next());
                    let cat = 1 + (rng.next() * 10.0) as i64;
                    let score = if rng.next() < 0.05 { 0.0 } else { 1.0 };
                    Row::new(
                        (rng.next() * (w - bw)).round(),
                        (rng.next() * (h - bh)).round(),
                        bw.round(),
                        bh.round(),
                        score,
                        cat,
                    )
                })
                .collect();
            gt.push(Row::new(100.0, 100.0, 200.0, 100.0, 0.0, 0));
            gt.push(Row::new(700.0, 400.0, 150.0, 150.0, 0.0, 0));
            let det = (0..dets_per_image)
                .map(|j| {
                    let g = gt[j % 60];
                    let jitter = |v: f64, r: &mut Lcg| v + (r.next() - 0.5) * 6.0;
                    let cat = if rng.next() < 0.8 {
                        g.category
                    } else {
                        1 + (rng.next() * 10.0) as i64
                    };
                    Row::new(
                        jitter(g.x, &mut rng),
                        jitter(g.y, &mut rng),
                        jitter(g.w, &mut rng).max(1.0),
                        jitter(g.h, &mut rng).max(1.0),
                        rng.next(),
                        cat,
                    )
                })
                .collect();
            ImageRecord {
                name: format!("{i:07}"),
                width: w as u32,
                height: h as u32,
                gt,
                det,
            }
        })
        .collect()
}
