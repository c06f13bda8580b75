//! Image → network input: `letterbox` (Darknet's default: aspect kept, grey 0.5 padding) or
//! `stretch` (plain resize, as OpenCV DNN's `blobFromImage` does). Both resample with OpenCV's
//! INTER_LINEAR rules (half-pixel centres, no antialiasing, rounded to 8 bits) so results are
//! comparable with OpenCV-based tools.

use candle_core::{Device, Tensor};
use image::RgbImage;

/// How the image is fitted to the network input.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    #[default]
    Letterbox,
    Stretch,
}

/// Where the image landed inside the network input, to map boxes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub image_w: u32,
    pub image_h: u32,
    pub offset_x: f32,
    pub offset_y: f32,
    pub scaled_w: f32,
    pub scaled_h: f32,
}

impl Placement {
    /// Network-input pixel coordinates → original-image pixel coordinates.
    pub fn to_image(&self, x: f32, y: f32) -> (f32, f32) {
        (
            (x - self.offset_x) * self.image_w as f32 / self.scaled_w,
            (y - self.offset_y) * self.image_h as f32 / self.scaled_h,
        )
    }
}

/// Darknet's letterbox geometry: the scaled size and its top-left offset.
pub fn letterbox_geometry(
    img_w: u32,
    img_h: u32,
    net_w: usize,
    net_h: usize,
) -> (usize, usize, usize, usize) {
    let (iw, ih) = (img_w as usize, img_h as usize);
    let (new_w, new_h) = if (net_w as f64 / iw as f64) < (net_h as f64 / ih as f64) {
        (net_w, (ih * net_w / iw).max(1))
    } else {
        ((iw * net_h / ih).max(1), net_h)
    };
    (new_w, new_h, (net_w - new_w) / 2, (net_h - new_h) / 2)
}

/// Per-output-pixel source index and 11-bit fixed-point weights, as OpenCV computes them:
/// `f = (float)((d + 0.5)·scale − 0.5)`, clamped at both edges, each weight rounded on its own.
fn linear_taps(dst: usize, src_len: usize) -> Vec<(usize, usize, i32, i32)> {
    let scale = src_len as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut i0 = f.floor() as i64;
            let mut frac = f - i0 as f32;
            if i0 < 0 {
                i0 = 0;
                frac = 0.0;
            }
            if i0 >= src_len as i64 - 1 {
                i0 = src_len as i64 - 1;
                frac = 0.0;
            }
            let i0 = i0 as usize;
            let a0 = ((1.0 - frac) * 2048.0).round_ties_even() as i32;
            let a1 = (frac * 2048.0).round_ties_even() as i32;
            (i0, (i0 + 1).min(src_len - 1), a0, a1)
        })
        .collect()
}

/// Bilinear resize of an 8-bit image with OpenCV INTER_LINEAR semantics, bit-exact with its
/// fixed-point path: horizontal pass in 11-bit integer weights, vertical pass as OpenCV's SIMD
/// kernel does it (`(mulhi(S0>>4, b0) + mulhi(S1>>4, b1) + 2) >> 2`). No antialiasing.
pub fn resize_linear(src: &RgbImage, dst_w: usize, dst_h: usize) -> Vec<u8> {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let xs = linear_taps(dst_w, sw);
    let ys = linear_taps(dst_h, sh);
    let raw = src.as_raw();
    let hpass = |y: usize| -> Vec<i32> {
        let row = &raw[y * sw * 3..(y + 1) * sw * 3];
        let mut out = Vec::with_capacity(dst_w * 3);
        for &(x0, x1, a0, a1) in &xs {
            for c in 0..3 {
                out.push(row[x0 * 3 + c] as i32 * a0 + row[x1 * 3 + c] as i32 * a1);
            }
        }
        out
    };
    let mulhi = |a: i32, b: i32| (a * b) >> 16;
    let mut out = vec![0u8; dst_w * dst_h * 3];
    let mut cache: Option<(usize, Vec<i32>)> = None;
    for (dy, &(y0, y1, b0, b1)) in ys.iter().enumerate() {
        let r0 = match cache.take() {
            Some((y, r)) if y == y0 => r,
            _ => hpass(y0),
        };
        let r1 = if y1 == y0 { r0.clone() } else { hpass(y1) };
        let row = &mut out[dy * dst_w * 3..(dy + 1) * dst_w * 3];
        for (i, v) in row.iter_mut().enumerate() {
            let s = (mulhi(r0[i] >> 4, b0) + mulhi(r1[i] >> 4, b1) + 2) >> 2;
            *v = s.clamp(0, 255) as u8;
        }
        cache = Some((y1, r1));
    }
    out
}

/// Builds the `[1, 3, net_h, net_w]` f32 input (RGB, 0..1) and the placement of the image in it.
///
/// # Errors
/// Candle errors creating the tensor.
pub fn preprocess(
    img: &RgbImage,
    net_w: usize,
    net_h: usize,
    mode: ResizeMode,
    device: &Device,
) -> candle_core::Result<(Tensor, Placement)> {
    let (iw, ih) = (img.width(), img.height());
    let (new_w, new_h, ox, oy) = match mode {
        ResizeMode::Letterbox => letterbox_geometry(iw, ih, net_w, net_h),
        ResizeMode::Stretch => (net_w, net_h, 0, 0),
    };
    let resized = if (new_w, new_h) == (iw as usize, ih as usize) {
        img.as_raw().clone()
    } else {
        resize_linear(img, new_w, new_h)
    };
    let plane = net_w * net_h;
    let mut chw = vec![0.5f32; 3 * plane];
    for y in 0..new_h {
        for x in 0..new_w {
            let src = (y * new_w + x) * 3;
            let dst = (y + oy) * net_w + (x + ox);
            for c in 0..3 {
                chw[c * plane + dst] = resized[src + c] as f32 / 255.0;
            }
        }
    }
    let placement = Placement {
        image_w: iw,
        image_h: ih,
        offset_x: ox as f32,
        offset_y: oy as f32,
        scaled_w: new_w as f32,
        scaled_h: new_h as f32,
    };
    Ok((
        Tensor::from_vec(chw, (1, 3, net_h, net_w), device)?,
        placement,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_keeps_aspect_and_centres() {
        // 810x1080 portrait into 416x416: height-limited.
        assert_eq!(letterbox_geometry(810, 1080, 416, 416), (312, 416, 52, 0));
        assert_eq!(letterbox_geometry(1280, 720, 416, 416), (416, 234, 0, 91));
    }

    #[test]
    fn resize_matches_opencv_half_pixel_rule() {
        // 2x1 image [0, 200] upscaled to 4x1: OpenCV INTER_LINEAR gives [0, 50, 150, 200].
        let img = RgbImage::from_raw(2, 1, vec![0, 0, 0, 200, 200, 200]).unwrap();
        let out = resize_linear(&img, 4, 1);
        let reds: Vec<u8> = out.chunks(3).map(|p| p[0]).collect();
        assert_eq!(reds, vec![0, 50, 150, 200]);
    }

    #[test]
    fn placement_maps_back() {
        let img = RgbImage::new(810, 1080);
        let (t, p) = preprocess(&img, 416, 416, ResizeMode::Letterbox, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 3, 416, 416]);
        let (x, y) = p.to_image(52.0 + 312.0, 416.0);
        assert!((x - 810.0).abs() < 1e-3 && (y - 1080.0).abs() < 1e-3);
    }
}
