//! Annotated copies of frames: boxes, labels and scores drawn with a built-in 5×7 bitmap font
//! (no font files to ship to the drone).

use crate::detect::Detection;
use image::{Rgb, RgbImage};

/// 5×7 glyphs, one byte per row, low 5 bits used (bit 4 = leftmost column).
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [30, 17, 17, 17, 17, 17, 30],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 10, 4, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 31],
        _ => [0; 7],
    }
}

/// A distinct, stable colour per class.
pub fn class_colour(class_id: usize) -> Rgb<u8> {
    const P: [[u8; 3]; 8] = [
        [255, 56, 56],
        [72, 249, 10],
        [255, 178, 29],
        [0, 194, 255],
        [207, 210, 49],
        [146, 204, 23],
        [255, 55, 199],
        [52, 69, 147],
    ];
    Rgb(P[class_id % P.len()])
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// Draws `text` with its top-left at (x, y), on a filled background of `bg`.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, fg: Rgb<u8>, bg: Rgb<u8>) {
    let w = text.chars().count() as i64 * 6 + 1;
    for dy in 0..9 {
        for dx in 0..w {
            put(img, x + dx, y + dy, bg);
        }
    }
    for (i, ch) in text.chars().enumerate() {
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..5 {
                if bits & (1 << (4 - col)) != 0 {
                    put(img, x + 1 + i as i64 * 6 + col, y + 1 + row as i64, fg);
                }
            }
        }
    }
}

/// Draws a rectangle outline `thickness` pixels wide.
pub fn draw_rect(
    img: &mut RgbImage,
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
    thickness: i64,
    c: Rgb<u8>,
) {
    for t in 0..thickness {
        for x in x0..=x1 {
            put(img, x, y0 + t, c);
            put(img, x, y1 - t, c);
        }
        for y in y0..=y1 {
            put(img, x0 + t, y, c);
            put(img, x1 - t, y, c);
        }
    }
}

/// Draws every detection: box in the class colour, "label 0.97" above it.
pub fn annotate(img: &mut RgbImage, dets: &[Detection], names: &[String]) {
    let thickness = ((img.width().max(img.height()) / 400) as i64).max(2);
    for d in dets {
        let c = class_colour(d.class_id);
        let (x0, y0) = (d.bbox.x.round() as i64, d.bbox.y.round() as i64);
        let (x1, y1) = (
            (d.bbox.x + d.bbox.w).round() as i64,
            (d.bbox.y + d.bbox.h).round() as i64,
        );
        draw_rect(img, x0, y0, x1, y1, thickness, c);
        let label = names
            .get(d.class_id)
            .cloned()
            .unwrap_or_else(|| d.class_id.to_string());
        draw_text(
            img,
            x0,
            (y0 - 9).max(0),
            &format!("{label} {:.2}", d.score),
            Rgb([0, 0, 0]),
            c,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::BBox;

    #[test]
    fn draws_box_edges_and_label_inside_the_image() {
        let mut img = RgbImage::new(100, 100);
        let d = Detection {
            class_id: 0,
            score: 0.5,
            bbox: BBox {
                x: 10.0,
                y: 20.0,
                w: 30.0,
                h: 40.0,
            },
        };
        annotate(&mut img, &[d], &["person".into()]);
        assert_eq!(*img.get_pixel(10, 40), class_colour(0));
        assert_eq!(*img.get_pixel(25, 40), Rgb([0, 0, 0]));
        // label background sits above the box
        assert_eq!(*img.get_pixel(10, 11), class_colour(0));
    }
}
