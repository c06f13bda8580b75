//! Per-image greedy matching (Dollár's `bbGt evalRes`, as the toolkit runs it) and VOC
//! all-point AP.

/// Detection outcome: matched a normal GT.
pub const TP: i8 = 1;
/// Detection outcome: matched nothing.
pub const FP: i8 = 0;
/// Detection outcome: absorbed by an ignore GT (neither TP nor FP).
pub const IGNORED: i8 = -1;

/// Overlap of detection `d` with GT `g`: IoU for a normal GT, intersection over the
/// detection's area for an ignore GT; `x2 = x + w`, zero when the boxes only touch.
pub fn overlap(d: [f64; 4], g: [f64; 4], ignore_gt: bool) -> f64 {
    let w = (d[0] + d[2]).min(g[0] + g[2]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[1] + d[3]).min(g[1] + g[3]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let t = w * h;
    let da = d[2] * d[3];
    let u = if ignore_gt { da } else { da + g[2] * g[3] - t };
    t / u
}

/// Greedy matching of detections (already in descending score order) against GT (normal first,
/// then ignore; `n_normal` of them normal) given the overlap matrix `oa[d * ng + g]`.
/// `active` lists the detection indices taking part (a subsequence of the score order).
pub fn match_greedy(
    oa: &[f64],
    ng: usize,
    n_normal: usize,
    active: &[usize],
    thr: f64,
    gt_taken: &mut Vec<bool>,
    out: &mut Vec<i8>,
) {
    gt_taken.clear();
    gt_taken.resize(ng, false);
    out.clear();
    for &d in active {
        let row = &oa[d * ng..(d + 1) * ng];
        let mut best = thr;
        let mut best_g = usize::MAX;
        let mut best_m = FP;
        for (g, &o) in row.iter().enumerate() {
            let is_ignore = g >= n_normal;
            if !is_ignore && gt_taken[g] {
                continue;
            }
            if best_m != FP && is_ignore {
                break;
            }
            if o < best {
                continue;
            }
            best = o;
            best_g = g;
            best_m = if is_ignore { IGNORED } else { TP };
        }
        if best_m == TP {
            gt_taken[best_g] = true;
        }
        out.push(best_m);
    }
}

/// VOC all-point average precision (the toolkit's `VOCap`).
pub fn voc_ap(rec: &[f64], prec: &[f64]) -> f64 {
    let n = rec.len();
    let mut mrec = Vec::with_capacity(n + 2);
    mrec.push(0.0);
    mrec.extend_from_slice(rec);
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(n + 2);
    mpre.push(0.0);
    mpre.extend_from_slice(prec);
    mpre.push(0.0);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    let mut ap = 0.0;
    for i in 1..mrec.len() {
        if mrec[i] != mrec[i - 1] {
            ap += (mrec[i] - mrec[i - 1]) * mpre[i];
        }
    }
    ap
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dets: &[[f64; 4]], gts: &[[f64; 4]], n_normal: usize, thr: f64) -> Vec<i8> {
        let ng = gts.len();
        let oa: Vec<f64> = dets
            .iter()
            .flat_map(|d| {
                gts.iter()
                    .enumerate()
                    .map(move |(g, gg)| overlap(*d, *gg, g >= n_normal))
            })
            .collect();
        let active: Vec<usize> = (0..dets.len()).collect();
        let (mut taken, mut out) = (Vec::new(), Vec::new());
        match_greedy(&oa, ng, n_normal, &active, thr, &mut taken, &mut out);
        out
    }

    #[test]
    fn overlap_iou_iof_and_touching() {
        assert_eq!(
            overlap([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 10.0, 10.0], false),
            50.0 / 150.0
        );
        assert_eq!(
            overlap([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 100.0, 100.0], true),
            0.5
        );
        assert_eq!(
            overlap([0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 10.0, 10.0], false),
            0.0
        );
    }

    #[test]
    fn duplicates_become_fp_and_ignore_gt_absorbs_many() {
        let g = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(run(&[g, g, g], &[g], 1, 0.5), vec![TP, FP, FP]);
        assert_eq!(run(&[g, g, g], &[g], 0, 0.5), vec![IGNORED; 3]);
        // A normal GT wins over an ignore GT; the second duplicate then falls to the ignore GT.
        assert_eq!(run(&[g, g], &[g, g], 1, 0.5), vec![TP, IGNORED]);
    }

    #[test]
    fn later_equal_overlap_gt_replaces_earlier() {
        let d = [5.0, 0.0, 10.0, 10.0];
        let gts = [[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 10.0, 10.0]];
        let oa: Vec<f64> = gts.iter().map(|g| overlap(d, *g, false)).collect();
        let (mut taken, mut out) = (Vec::new(), Vec::new());
        match_greedy(&oa, 2, 2, &[0], 0.3, &mut taken, &mut out);
        assert_eq!(out, vec![TP]);
        assert_eq!(taken, vec![false, true]);
    }

    #[test]
    fn voc_ap_known_curves() {
        assert_eq!(voc_ap(&[], &[]), 0.0);
        assert_eq!(voc_ap(&[1.0], &[1.0]), 1.0);
        // TP, FP, TP over 2 GT: 0.5·1 + 0.5·(2/3).
        let ap = voc_ap(&[0.5, 0.5, 1.0], &[1.0, 0.5, 2.0 / 3.0]);
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-15);
    }
}
