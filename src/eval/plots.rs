//! Per-class precision-recall curves as PNG, drawn pixel by pixel (no fonts needed).

use super::error::io_err;
use super::visdrone::VisdroneResult;
use super::{EvalError, CLASS_NAMES};
use image::{Rgb, RgbImage};
use std::path::Path;

const SIZE: u32 = 400;
const MARGIN: u32 = 30;

fn to_px(v: f64, flip: bool) -> u32 {
    let span = f64::from(SIZE - 2 * MARGIN);
    let v = v.clamp(0.0, 1.0) * span;
    let p = if flip { span - v } else { v };
    MARGIN + p.round() as u32
}

fn draw_axes(img: &mut RgbImage) {
    let black = Rgb([0, 0, 0]);
    let grey = Rgb([220, 220, 220]);
    for i in 0..=10 {
        let t = f64::from(i) / 10.0;
        for k in MARGIN..=SIZE - MARGIN {
            img.put_pixel(to_px(t, false), k, grey);
            img.put_pixel(k, to_px(t, true), grey);
        }
    }
    for k in MARGIN..=SIZE - MARGIN {
        img.put_pixel(MARGIN, k, black);
        img.put_pixel(k, SIZE - MARGIN, black);
    }
}

/// Draws the curve (recall on x, precision on y) with straight segments between points.
fn draw_curve(img: &mut RgbImage, pts: &[(f64, f64)]) {
    let blue = Rgb([20, 60, 200]);
    for w in pts.windows(2) {
        let (x0, y0) = (to_px(w[0].0, false) as i64, to_px(w[0].1, true) as i64);
        let (x1, y1) = (to_px(w[1].0, false) as i64, to_px(w[1].1, true) as i64);
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        for s in 0..=steps {
            let x = x0 + (x1 - x0) * s / steps;
            let y = y0 + (y1 - y0) * s / steps;
            img.put_pixel(x as u32, y as u32, blue);
        }
    }
}

/// Writes `pr_<id>_<name>.png` per class (IoU 0.5, maxDets 500).
pub fn write_pr_plots(dir: &Path, res: &VisdroneResult) -> Result<(), EvalError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    for c in &res.classes {
        let mut img = RgbImage::from_pixel(SIZE, SIZE, Rgb([255, 255, 255]));
        draw_axes(&mut img);
        draw_curve(&mut img, &c.pr_curve);
        let name = usize::try_from(c.class_id - 1)
            .ok()
            .and_then(|i| CLASS_NAMES.get(i))
            .copied()
            .unwrap_or("class");
        let path = dir.join(format!("pr_{:02}_{name}.png", c.class_id));
        img.save(&path).map_err(|e| EvalError::Output {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}
