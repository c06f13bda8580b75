//! |γ| histogram as a PNG (bars in log-count scale, threshold marked in red), drawn with `image`.

use std::path::Path;

use image::{Rgb, RgbImage};

use super::PruneError;

const W: u32 = 640;
const H: u32 = 320;
const BINS: usize = 128;

/// Draws the histogram of `values` over [0, max]; `thresh` (if any) as a red vertical line.
pub fn write_png(path: &Path, values: &[f32], thresh: Option<f32>) -> Result<(), PruneError> {
    let max = values
        .iter()
        .copied()
        .fold(0.0f32, f32::max)
        .max(f32::MIN_POSITIVE);
    let mut counts = [0usize; BINS];
    for v in values {
        let b = ((v / max) * (BINS as f32 - 1.0)).round() as usize;
        counts[b.min(BINS - 1)] += 1;
    }
    let top = counts
        .iter()
        .map(|&c| ((c + 1) as f64).ln())
        .fold(0.0, f64::max)
        .max(1e-9);
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let bar_w = W / BINS as u32;
    for (b, &c) in counts.iter().enumerate() {
        let bh = (((c + 1) as f64).ln() / top * (H as f64 - 10.0)) as u32;
        for x in b as u32 * bar_w..(b as u32 + 1) * bar_w - 1 {
            for y in H - bh..H {
                img.put_pixel(x, y, Rgb([40, 90, 160]));
            }
        }
    }
    if let Some(t) = thresh {
        let x = ((t / max) * (BINS as f32 - 1.0)).round() as u32 * bar_w;
        for y in 0..H {
            img.put_pixel(x.min(W - 1), y, Rgb([220, 30, 30]));
        }
    }
    img.save(path).map_err(|e| PruneError::Image {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}
