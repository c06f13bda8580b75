//! Annotated copies of images: a box per detection with "label score" above it, drawn with a
//! built-in 5×7 bitmap font so no font file has to ship with the drone image.

use std::path::Path;

use image::{Rgb, RgbImage};

use super::PublishError;
use crate::detect::Detection;

/// Pixel size of one font dot.
const DOT: u32 = 2;
const GLYPH_W: u32 = 5;
const GLYPH_H: u32 = 7;
const LINE: u32 = 2;

/// 5×7 glyphs, one byte per row, bit 4 = leftmost column. Lowercase is drawn as uppercase.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        ' ' => [0; 7],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04], // '?'
    }
}

/// A distinct, bright colour per class (golden-ratio hue walk).
pub fn class_colour(class_id: usize) -> Rgb<u8> {
    let h = (class_id as f32 * 0.618_034).fract() * 6.0;
    let x = (1.0 - (h % 2.0 - 1.0).abs()) * 255.0;
    let (r, g, b) = match h as u32 {
        0 => (255.0, x, 0.0),
        1 => (x, 255.0, 0.0),
        2 => (0.0, 255.0, x),
        3 => (0.0, x, 255.0),
        4 => (x, 0.0, 255.0),
        _ => (255.0, 0.0, x),
    };
    Rgb([r as u8, g as u8, b as u8])
}

/// Fills a rectangle, clipped to the image.
pub fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, c: Rgb<u8>) {
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    for yy in y.max(0)..(y + h).min(ih) {
        for xx in x.max(0)..(x + w).min(iw) {
            img.put_pixel(xx as u32, yy as u32, c);
        }
    }
}

/// Draws a rectangle outline `LINE` pixels thick, clipped to the image.
pub fn draw_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, c: Rgb<u8>) {
    let t = LINE as i64;
    fill_rect(img, x, y, w, t, c);
    fill_rect(img, x, y + h - t, w, t, c);
    fill_rect(img, x, y, t, h, c);
    fill_rect(img, x + w - t, y, t, h, c);
}

/// Width in pixels of `text` drawn with `draw_text`.
pub fn text_width(text: &str) -> u32 {
    text.chars().count() as u32 * (GLYPH_W + 1) * DOT
}

/// Draws `text` with its top-left corner at (x, y).
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, c: Rgb<u8>) {
    let d = DOT as i64;
    for (i, ch) in text.chars().enumerate() {
        let gx = x + i as i64 * (GLYPH_W as i64 + 1) * d;
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..GLYPH_W as i64 {
                if bits & (0x10 >> col) != 0 {
                    fill_rect(img, gx + col * d, y + row as i64 * d, d, d, c);
                }
            }
        }
    }
}

/// Draws every detection: class-coloured box, and "label 0.98" on a filled tag above it.
pub fn draw_detections(img: &mut RgbImage, dets: &[Detection], names: &[String]) {
    let tag_h = (GLYPH_H + 2) * DOT;
    for d in dets {
        let c = class_colour(d.class_id);
        let (x, y) = (d.bbox.x.round() as i64, d.bbox.y.round() as i64);
        let (w, h) = (d.bbox.w.round() as i64, d.bbox.h.round() as i64);
        draw_rect(img, x, y, w.max(1), h.max(1), c);
        let label = names
            .get(d.class_id)
            .cloned()
            .unwrap_or_else(|| d.class_id.to_string());
        let text = format!("{label} {:.2}", d.score);
        let ty = if y >= tag_h as i64 {
            y - tag_h as i64
        } else {
            y
        };
        fill_rect(
            img,
            x,
            ty,
            (text_width(&text) + 2 * DOT) as i64,
            tag_h as i64,
            c,
        );
        draw_text(img, x + DOT as i64, ty + DOT as i64, &text, Rgb([0, 0, 0]));
    }
}

/// Saves as JPEG or PNG, chosen by the file extension.
pub fn save(img: &RgbImage, path: &Path) -> Result<(), PublishError> {
    img.save(path).map_err(|e| PublishError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::BBox;

    #[test]
    fn box_and_label_are_drawn_inside_the_image() {
        let mut img = RgbImage::new(100, 80);
        let det = Detection {
            class_id: 0,
            score: 0.5,
            bbox: BBox {
                x: 20.0,
                y: 30.0,
                w: 40.0,
                h: 30.0,
            },
        };
        draw_detections(&mut img, &[det], &["person".to_string()]);
        let c = class_colour(0);
        assert_eq!(*img.get_pixel(20, 45), c); // left edge
        assert_eq!(*img.get_pixel(59, 59), c); // bottom-right corner
        assert_eq!(*img.get_pixel(40, 45), Rgb([0, 0, 0])); // inside untouched
                                                            // The tag above the box holds black text dots on the class colour.
        let tag: Vec<_> = (12..30)
            .flat_map(|y| (20..100).map(move |x| (x, y)))
            .collect();
        assert!(tag.iter().any(|&(x, y)| *img.get_pixel(x, y) == c));
        assert!(tag
            .iter()
            .any(|&(x, y)| *img.get_pixel(x, y) == Rgb([0, 0, 0])));
    }

    #[test]
    fn boxes_partly_outside_do_not_panic_and_save_round_trips() {
        let mut img = RgbImage::new(10, 10);
        let det = Detection {
            class_id: 7,
            score: 1.0,
            bbox: BBox {
                x: -5.0,
                y: 8.0,
                w: 50.0,
                h: 50.0,
            },
        };
        draw_detections(&mut img, &[det], &[]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        save(&img, &p).unwrap();
        assert_eq!(image::open(&p).unwrap().to_rgb8(), img);
        assert!(save(&img, &dir.path().join("a.unknownext")).is_err());
    }
}
