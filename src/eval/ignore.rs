//! Ignored-region removal exactly as the toolkit's `dropObjectsInIgr` does it: on its pixel
//! grid (a region covers one extra column left and one extra row above), category-agnostic,
//! keep a box iff the covered pixels of its (clipped) window are < 50 % of its unclipped area.

use super::{ImageRecord, Row};

/// A region's pixels, 0-based half-open: columns `[x0, x1)`, rows `[y0, y1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

fn matlab_round(v: f64) -> i64 {
    // MATLAB's round is half away from zero, as f64::round.
    v.round() as i64
}

/// The mask rectangle the toolkit paints for region row `r` in a `w`×`h` image.
fn region_rect(r: &Row, w: i64, h: i64) -> Option<Rect> {
    let rx = matlab_round(r.x).max(1);
    let ry = matlab_round(r.y).max(1);
    let rw = matlab_round(r.w).max(1);
    let rh = matlab_round(r.h).max(1);
    let rect = Rect {
        x0: rx - 1,
        y0: ry - 1,
        x1: w.min(rx + rw),
        y1: h.min(ry + rh),
    };
    (rect.x0 < rect.x1 && rect.y0 < rect.y1).then_some(rect)
}

/// Area of the union of `rects` clipped to `win` (coordinate compression; few regions per image).
fn covered(rects: &[Rect], win: Rect) -> i64 {
    let clipped: Vec<Rect> = rects
        .iter()
        .map(|r| Rect {
            x0: r.x0.max(win.x0),
            y0: r.y0.max(win.y0),
            x1: r.x1.min(win.x1),
            y1: r.y1.min(win.y1),
        })
        .filter(|r| r.x0 < r.x1 && r.y0 < r.y1)
        .collect();
    match clipped.len() {
        0 => return 0,
        1 => return (clipped[0].x1 - clipped[0].x0) * (clipped[0].y1 - clipped[0].y0),
        _ => {}
    }
    let mut xs: Vec<i64> = clipped.iter().flat_map(|r| [r.x0, r.x1]).collect();
    xs.sort_unstable();
    xs.dedup();
    let mut area = 0;
    let mut spans: Vec<(i64, i64)> = Vec::with_capacity(clipped.len());
    for slab in xs.windows(2) {
        spans.clear();
        spans.extend(
            clipped
                .iter()
                .filter(|r| r.x0 <= slab[0] && r.x1 >= slab[1])
                .map(|r| (r.y0, r.y1)),
        );
        spans.sort_unstable();
        let (mut covered_y, mut end) = (0, i64::MIN);
        for &(a, b) in &spans {
            let a = a.max(end);
            if b > a {
                covered_y += b - a;
                end = b;
            }
        }
        area += covered_y * (slab[1] - slab[0]);
    }
    area
}

/// Whether the toolkit keeps box `b` given the image's region rectangles.
fn keeps(b: &Row, rects: &[Rect], w: i64, h: i64) -> bool {
    let px = matlab_round(b.x).max(1);
    let py = matlab_round(b.y).max(1);
    let bw = matlab_round(b.w).max(1);
    let bh = matlab_round(b.h).max(1);
    let x = px.min(w);
    let y = py.min(h);
    let win = Rect {
        x0: x,
        y0: y,
        x1: w.min(x + bw),
        y1: h.min(y + bh),
    };
    2 * covered(rects, win) < bw * bh
}

/// Drops category-0 rows from the GT and, when the image has regions, every GT row and every
/// detection (any category) that the regions cover by ≥ 50 %.
pub fn drop_in_ignored(img: &mut ImageRecord) {
    let (w, h) = (i64::from(img.width), i64::from(img.height));
    let rects: Vec<Rect> = img
        .gt
        .iter()
        .filter(|r| r.category == 0)
        .filter_map(|r| region_rect(r, w, h))
        .collect();
    let had_regions = img.gt.iter().any(|r| r.category == 0);
    img.gt.retain(|r| r.category != 0);
    if !had_regions {
        return;
    }
    img.gt.retain(|r| keeps(r, &rects, w, h));
    img.det.retain(|r| keeps(r, &rects, w, h));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(x: f64, y: f64, bw: f64, bh: f64) -> bool {
        let mut img = ImageRecord {
            name: "t".into(),
            width: 100,
            height: 100,
            gt: vec![Row::new(10.0, 10.0, 5.0, 5.0, 0.0, 0)],
            det: vec![Row::new(x, y, bw, bh, 0.9, 4)],
        };
        drop_in_ignored(&mut img);
        !img.det.is_empty()
    }

    /// The hand cases of docs/evaluation.md (run through the toolkit's own function).
    #[test]
    fn toolkit_pixel_grid_cases() {
        assert!(!kept(10.0, 10.0, 5.0, 5.0));
        assert!(!kept(8.0, 8.0, 4.0, 4.0)); // 9/16 on the toolkit grid, 4/16 geometrically
        assert!(!kept(9.0, 9.0, 2.0, 2.0));
        assert!(!kept(8.5, 8.5, 2.0, 2.0)); // half away from zero
        assert!(kept(8.4, 8.4, 2.0, 2.0));
        assert!(!kept(14.0, 14.0, 1.0, 1.0));
        assert!(kept(15.0, 15.0, 1.0, 1.0));
        assert!(kept(14.0, 14.0, 4.0, 4.0));
        assert!(kept(0.0, 0.0, 12.0, 12.0));
    }

    #[test]
    fn unclipped_area_is_the_divisor_and_regions_are_category_agnostic() {
        // Region covering the right edge; a box sticking far out is judged on its full area.
        let mut img = ImageRecord {
            name: "t".into(),
            width: 50,
            height: 50,
            gt: vec![
                Row::new(40.0, 0.0, 20.0, 60.0, 0.0, 0),
                Row::new(45.0, 10.0, 4.0, 4.0, 1.0, 11),
            ],
            det: vec![
                Row::new(45.0, 10.0, 40.0, 4.0, 0.9, 4),
                Row::new(45.0, 10.0, 4.0, 4.0, 0.9, 11),
            ],
        };
        drop_in_ignored(&mut img);
        assert!(img.gt.is_empty());
        assert_eq!(img.det.len(), 1);
        assert_eq!(img.det[0].w, 40.0);
    }

    #[test]
    fn overlapping_regions_count_once() {
        let rects = [
            Rect {
                x0: 0,
                y0: 0,
                x1: 10,
                y1: 10,
            },
            Rect {
                x0: 5,
                y0: 5,
                x1: 15,
                y1: 15,
            },
        ];
        let win = Rect {
            x0: 0,
            y0: 0,
            x1: 20,
            y1: 20,
        };
        assert_eq!(covered(&rects, win), 175);
    }

    #[test]
    fn no_regions_keeps_everything_but_category_zero() {
        let mut img = ImageRecord {
            name: "t".into(),
            width: 10,
            height: 10,
            gt: vec![Row::new(0.0, 0.0, 5.0, 5.0, 1.0, 1)],
            det: vec![Row::new(0.0, 0.0, 500.0, 500.0, 0.9, 1)],
        };
        drop_in_ignored(&mut img);
        assert_eq!((img.gt.len(), img.det.len()), (1, 1));
    }
}
