//! Agreement of a reduced-precision model with f32: pseudo-AP50 (f32 detections as ground truth)
//! and the largest absolute difference on raw head outputs.

/// A detection reduced to what the metric needs. Box corners in pixels `[x1, y1, x2, y2]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub class: usize,
    pub score: f32,
    pub bbox: [f32; 4],
}

/// Intersection over union of two corner boxes (0 for empty ones).
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Mean over ground-truth classes of all-point-interpolated AP at IoU ≥ 0.5, images pooled.
/// `truth[i]` and `found[i]` are the detections of image `i`. No ground truth at all → 1.0 if
/// nothing was found either, else 0.0.
pub fn pseudo_ap50(truth: &[Vec<Scored>], found: &[Vec<Scored>]) -> f64 {
    let mut classes: Vec<usize> = truth.iter().flatten().map(|d| d.class).collect();
    classes.sort_unstable();
    classes.dedup();
    if classes.is_empty() {
        return if found.iter().all(|f| f.is_empty()) {
            1.0
        } else {
            0.0
        };
    }
    let sum: f64 = classes.iter().map(|&c| class_ap(truth, found, c)).sum();
    sum / classes.len() as f64
}

fn class_ap(truth: &[Vec<Scored>], found: &[Vec<Scored>], class: usize) -> f64 {
    let n_truth = truth.iter().flatten().filter(|d| d.class == class).count();
    let mut preds: Vec<(usize, Scored)> = found
        .iter()
        .enumerate()
        .flat_map(|(i, ds)| ds.iter().filter(|d| d.class == class).map(move |d| (i, *d)))
        .collect();
    preds.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    let mut used: Vec<Vec<bool>> = truth.iter().map(|t| vec![false; t.len()]).collect();
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut points = Vec::with_capacity(preds.len());
    for (img, p) in preds {
        let gts = truth.get(img).map(Vec::as_slice).unwrap_or(&[]);
        let best = gts
            .iter()
            .enumerate()
            .filter(|(j, g)| g.class == class && !used[img][*j])
            .map(|(j, g)| (j, iou(&g.bbox, &p.bbox)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((j, v)) if v >= 0.5 => {
                used[img][j] = true;
                tp += 1;
            }
            _ => fp += 1,
        }
        points.push((tp as f64 / n_truth as f64, tp as f64 / (tp + fp) as f64));
    }
    interpolated_area(&points)
}

/// Area under the precision envelope of (recall, precision) points in rank order.
fn interpolated_area(points: &[(f64, f64)]) -> f64 {
    let mut envelope: Vec<(f64, f64)> = points.to_vec();
    for i in (0..envelope.len().saturating_sub(1)).rev() {
        envelope[i].1 = envelope[i].1.max(envelope[i + 1].1);
    }
    let mut prev_recall = 0.0;
    let mut area = 0.0;
    for (r, p) in envelope {
        area += (r - prev_recall) * p;
        prev_recall = r;
    }
    area
}

/// Largest |a − b| over two equally long slices (∞ when the lengths differ).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(class: usize, score: f32, x: f32) -> Scored {
        Scored {
            class,
            score,
            bbox: [x, 0.0, x + 10.0, 10.0],
        }
    }

    #[test]
    fn identical_detections_score_one() {
        let t = vec![vec![d(0, 0.9, 0.0), d(1, 0.8, 50.0)], vec![d(0, 0.7, 5.0)]];
        assert_eq!(pseudo_ap50(&t, &t), 1.0);
    }

    #[test]
    fn missing_and_spurious_boxes_lower_the_score() {
        let t = vec![vec![d(0, 0.9, 0.0), d(0, 0.8, 50.0)]];
        let half = vec![vec![d(0, 0.9, 0.0)]];
        assert!((pseudo_ap50(&t, &half) - 0.5).abs() < 1e-9);
        let shifted = vec![vec![d(0, 0.9, 6.0), d(0, 0.8, 50.0)]]; // IoU 4/16 < 0.5
        assert!(pseudo_ap50(&t, &shifted) < 0.6);
        let wrong_class = vec![vec![d(1, 0.9, 0.0), d(1, 0.8, 50.0)]];
        assert_eq!(pseudo_ap50(&t, &wrong_class), 0.0);
    }

    #[test]
    fn max_abs_diff_works() {
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 1.0]), 1.0);
        assert!(max_abs_diff(&[1.0], &[]).is_infinite());
    }
}
