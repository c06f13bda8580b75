//! From an RGB image to the network input `[1, 3, H, W]` (f32, 0..1), and back for boxes.
//!
//! Resizing follows OpenCV `INTER_LINEAR` (half-pixel centres, edge clamp, no antialiasing)
//! in OpenCV's own 8-bit fixed-point arithmetic, so for the same decoded pixels our input
//! equals `cv2.dnn.blobFromImage`'s bit for bit (checked by tests/parity_real.rs).

use candle_core::{Device, Tensor};
use image::RgbImage;

use super::DetectError;

/// How the image is fitted into the network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Keep the aspect ratio, centre the image on a 0.5-grey canvas (Darknet's default).
    #[default]
    Letterbox,
    /// Scale each axis independently to the input size (OpenCV `blobFromImage`).
    Stretch,
}

/// Where the original image lies inside the network input: maps boxes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    pub scale_x: f32,
    pub scale_y: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    pub orig_w: u32,
    pub orig_h: u32,
}

impl Transform {
    /// Maps a network-input x coordinate to original-image pixels.
    pub fn x_to_image(&self, x: f32) -> f32 {
        (x - self.pad_x) / self.scale_x
    }
    /// Maps a network-input y coordinate to original-image pixels.
    pub fn y_to_image(&self, y: f32) -> f32 {
        (y - self.pad_y) / self.scale_y
    }
}

/// Size of the resized image inside a letterbox canvas, as Darknet computes it (integer maths).
pub fn letterbox_size(img_w: u32, img_h: u32, net_w: u32, net_h: u32) -> (u32, u32) {
    let (iw, ih, nw, nh) = (img_w as u64, img_h as u64, net_w as u64, net_h as u64);
    // Compare nw/iw < nh/ih without floats.
    if nw * ih < nh * iw {
        (net_w, ((ih * nw) / iw).max(1) as u32)
    } else {
        (((iw * nh) / ih).max(1) as u32, net_h)
    }
}

/// OpenCV's fixed-point scale of bilinear weights (`INTER_RESIZE_COEF_SCALE`).
const COEF_SCALE: f32 = 2048.0;

/// Source taps and 11-bit weights of each output coordinate, computed as OpenCV's
/// `resize` does for INTER_LINEAR (f32 position, floor, edge clamp, rounded weights).
fn linear_taps(dst: u32, src: u32) -> Vec<(usize, usize, i32, i32)> {
    let scale = 1.0 / (dst as f64 / src as f64);
    let last = src as usize - 1;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut i = f.floor();
            let mut frac = f - i;
            if i < 0.0 {
                (i, frac) = (0.0, 0.0);
            }
            if i as usize >= last {
                (i, frac) = (last as f32, 0.0);
            }
            let i = i as usize;
            let a0 = ((1.0 - frac) * COEF_SCALE).round_ties_even() as i32;
            let a1 = (frac * COEF_SCALE).round_ties_even() as i32;
            (i, (i + 1).min(last), a0, a1)
        })
        .collect()
}

/// Bilinear resize bit-exact with OpenCV 4.x `cv::resize(INTER_LINEAR)` on 8-bit images
/// (horizontal pass in 11-bit fixed point, vertical pass as its SIMD kernel rounds). Output rows
/// are computed in parallel, each from the two source rows it reads, resized horizontally on the
/// spot: a downscale never touches the source rows no output row needs.
pub fn resize_linear(img: &RgbImage, dst_w: u32, dst_h: u32) -> RgbImage {
    if img.width() == dst_w && img.height() == dst_h {
        return img.clone();
    }
    let xs = linear_taps(dst_w, img.width());
    let ys = linear_taps(dst_h, img.height());
    let (sw, src) = (img.width() as usize, img.as_raw());
    let row_len = dst_w as usize * 3;
    let hrow = |y: usize, out: &mut Vec<i32>| {
        out.clear();
        let line = &src[y * sw * 3..(y + 1) * sw * 3];
        for &(x0, x1, a0, a1) in &xs {
            let (p0, p1) = (&line[x0 * 3..x0 * 3 + 3], &line[x1 * 3..x1 * 3 + 3]);
            for c in 0..3 {
                out.push(p0[c] as i32 * a0 + p1[c] as i32 * a1);
            }
        }
    };
    let mut out = RgbImage::new(dst_w, dst_h);
    let blend = |(dst, &(y0, y1, b0, b1)): (&mut [u8], &(usize, usize, i32, i32)),
                 (r0, r1): (&mut Vec<i32>, &mut Vec<i32>)| {
        hrow(y0, r0);
        hrow(y1, r1);
        for (i, d) in dst.iter_mut().enumerate() {
            let v = (((r0[i] >> 4) * b0) >> 16) + (((r1[i] >> 4) * b1) >> 16);
            *d = ((v + 2) >> 2).clamp(0, 255) as u8;
        }
    };
    let rows = out.chunks_mut(row_len.max(1)).zip(ys.iter());
    if dst_h > 1 && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        let rows: Vec<_> = rows.collect();
        rows.into_par_iter().with_min_len(16).for_each_init(
            || (Vec::new(), Vec::new()),
            |(r0, r1), row| blend(row, (r0, r1)),
        );
    } else {
        let (mut r0, mut r1) = (Vec::new(), Vec::new());
        rows.for_each(|row| blend(row, (&mut r0, &mut r1)));
    }
    out
}

/// Builds the `[1, 3, net_h, net_w]` input and the transform that maps boxes back.
pub fn preprocess(
    img: &RgbImage,
    net_w: u32,
    net_h: u32,
    mode: ResizeMode,
    device: &Device,
) -> Result<(Tensor, Transform), DetectError> {
    let (iw, ih) = (img.width(), img.height());
    if iw == 0 || ih == 0 {
        return Err(DetectError::BadOption {
            option: "image".into(),
            why: "image has zero width or height".into(),
        });
    }
    let (plane, transform) = match mode {
        ResizeMode::Stretch => {
            let resized = resize_linear(img, net_w, net_h);
            let t = Transform {
                scale_x: net_w as f32 / iw as f32,
                scale_y: net_h as f32 / ih as f32,
                pad_x: 0.0,
                pad_y: 0.0,
                orig_w: iw,
                orig_h: ih,
            };
            (to_chw(&resized, net_w, net_h, 0, 0), t)
        }
        ResizeMode::Letterbox => {
            let (nw, nh) = letterbox_size(iw, ih, net_w, net_h);
            let resized = resize_linear(img, nw, nh);
            let (ox, oy) = ((net_w - nw) / 2, (net_h - nh) / 2);
            let t = Transform {
                scale_x: nw as f32 / iw as f32,
                scale_y: nh as f32 / ih as f32,
                pad_x: ox as f32,
                pad_y: oy as f32,
                orig_w: iw,
                orig_h: ih,
            };
            (to_chw(&resized, net_w, net_h, ox, oy), t)
        }
    };
    let shape = (1, 3, net_h as usize, net_w as usize);
    let tensor =
        Tensor::from_vec(plane, shape, device).map_err(DetectError::tensor("preprocess"))?;
    Ok((tensor, transform))
}

/// `blobFromImage` scales by the f32 value of 1/255 (a multiply, not a divide).
const INV_255: f32 = 1.0 / 255.0;

/// Planar CHW f32 (0..1) of `img` placed at (ox, oy) on a 0.5-grey canvas of net size.
fn to_chw(img: &RgbImage, net_w: u32, net_h: u32, ox: u32, oy: u32) -> Vec<f32> {
    let (nw, nh) = (net_w as usize, net_h as usize);
    let plane = nw * nh;
    let mut out = vec![0.5f32; 3 * plane];
    let (w, raw) = (img.width() as usize, img.as_raw());
    for y in 0..img.height() as usize {
        for x in 0..w {
            let src = (y * w + x) * 3;
            let dst = (y + oy as usize) * nw + x + ox as usize;
            for c in 0..3 {
                out[c * plane + dst] = raw[src + c] as f32 * INV_255;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_keeps_aspect_like_darknet() {
        assert_eq!(letterbox_size(810, 1080, 416, 416), (312, 416));
        assert_eq!(letterbox_size(1280, 720, 416, 416), (416, 234));
        assert_eq!(letterbox_size(1280, 720, 416, 288), (416, 234));
        assert_eq!(letterbox_size(100, 100, 416, 288), (288, 288));
    }

    #[test]
    fn resize_of_constant_image_is_constant_and_identity_is_exact() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([10, 200, 77]));
        let r = resize_linear(&img, 64, 32);
        assert!(r.pixels().all(|p| p.0 == [10, 200, 77]));
        assert_eq!(resize_linear(&img, 37, 23), img);
    }

    #[test]
    fn downscale_by_two_averages_pairs() {
        // Half-pixel centres: output pixel i samples between source 2i and 2i+1.
        let img = RgbImage::from_fn(4, 1, |x, _| image::Rgb([(x * 10) as u8, 0, 0]));
        let r = resize_linear(&img, 2, 1);
        assert_eq!(r.get_pixel(0, 0).0[0], 5);
        assert_eq!(r.get_pixel(1, 0).0[0], 25);
    }

    #[test]
    fn letterbox_pads_grey_and_maps_back() {
        let img = RgbImage::from_pixel(200, 100, image::Rgb([255, 0, 0]));
        let (t, tr) = preprocess(&img, 64, 64, ResizeMode::Letterbox, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 3, 64, 64]);
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v[0], 0.5); // top pad row
        assert_eq!(v[32 * 64 + 10], 1.0); // red channel inside image
        assert_eq!(v[64 * 64 + 32 * 64 + 10], 0.0); // green channel inside image
        assert_eq!((tr.pad_x, tr.pad_y), (0.0, 16.0));
        assert!((tr.x_to_image(64.0) - 200.0).abs() < 1e-4);
        assert!((tr.y_to_image(48.0) - 100.0).abs() < 1e-4);
    }
}
