//! `--protocol coco`: the same data under pycocotools 2.0.11's rules (`COCOeval` for bbox with
//! maxDets 1/10/100/500), after the toolkit's ignored-region removal. Conversion (docs/evaluation.md):
//! GT of category 1..10 → annotations (`iscrowd` = score 0, area = w·h), detections of category
//! 1..10 → results; categories 0 and 11 dropped. Per image and category the top 500 by score count.

use super::ignore::drop_in_ignored;
use super::matching::overlap;
use super::visdrone::{ClassResult, Summary, VisdroneResult, MAX_DETS, N_THR};
use super::{ImageRecord, Row};

const N_REC: usize = 101;
/// pycocotools' area ranges: all, small, medium, large.
const AREAS: [(f64, f64); 4] = [(0.0, 1e10), (0.0, 1024.0), (1024.0, 9216.0), (9216.0, 1e10)];

/// `np.linspace(.5, .95, 10)` exactly as numpy computes it.
pub fn coco_threshold(k: usize) -> f64 {
    if k == N_THR - 1 {
        return 0.95;
    }
    k as f64 * ((0.95 - 0.5) / 9.0) + 0.5
}

fn rec_threshold(r: usize) -> f64 {
    if r == N_REC - 1 {
        1.0
    } else {
        r as f64 * 0.01
    }
}

/// pycocotools' `evaluateImg` output for one image, category and area range.
struct ImgEval {
    scores: Vec<f64>,
    /// `[t][d]`: matched (any GT) and ignored flags.
    matched: Vec<Vec<bool>>,
    ignored: Vec<Vec<bool>>,
    n_normal_gt: usize,
}

/// One image and category, prepared once for every area range: GT in file order, detections
/// sorted by score (stable) and cut to 500, and their overlaps `iou[d * ng + g]`.
struct Prepared<'a> {
    gt: Vec<&'a Row>,
    dt: Vec<&'a Row>,
    iou: Vec<f64>,
}

fn prepare<'a>(img: &'a ImageRecord, c: i64) -> Option<Prepared<'a>> {
    let gt: Vec<&Row> = img.gt.iter().filter(|r| r.category == c).collect();
    let mut dt: Vec<&Row> = img.det.iter().filter(|r| r.category == c).collect();
    if gt.is_empty() && dt.is_empty() {
        return None;
    }
    dt.sort_by(|a, b| b.score.total_cmp(&a.score));
    dt.truncate(MAX_DETS[3]);
    let iou = dt
        .iter()
        .flat_map(|d| {
            gt.iter()
                .map(move |g| overlap([d.x, d.y, d.w, d.h], [g.x, g.y, g.w, g.h], g.score == 0.0))
        })
        .collect();
    Some(Prepared { gt, dt, iou })
}

fn evaluate_img(p: &Prepared, area: (f64, f64)) -> ImgEval {
    let outside = |a: f64| a < area.0 || a > area.1;
    // (index in file order, ignored), normal GT first (stable).
    let mut g: Vec<(usize, bool)> =
        p.gt.iter()
            .enumerate()
            .map(|(i, r)| (i, r.score == 0.0 || outside(r.w * r.h)))
            .collect();
    g.sort_by_key(|(_, ig)| *ig);
    let (nd, ng) = (p.dt.len(), g.len());
    let mut matched = vec![vec![false; nd]; N_THR];
    let mut ignored = vec![vec![false; nd]; N_THR];
    let mut gt_used = vec![false; ng];
    for t in 0..N_THR {
        gt_used.fill(false);
        for (di, dr) in p.dt.iter().enumerate() {
            let row = &p.iou[di * ng..(di + 1) * ng];
            let mut best = coco_threshold(t).min(1.0 - 1e-10);
            let mut m: Option<usize> = None;
            for (gi, &(orig, g_ig)) in g.iter().enumerate() {
                let crowd = p.gt[orig].score == 0.0;
                if gt_used[gi] && !crowd {
                    continue;
                }
                if let Some(mi) = m {
                    if !g[mi].1 && g_ig {
                        break;
                    }
                }
                let o = row[orig];
                if o < best {
                    continue;
                }
                best = o;
                m = Some(gi);
            }
            match m {
                Some(mi) => {
                    ignored[t][di] = g[mi].1;
                    matched[t][di] = true;
                    gt_used[mi] = true;
                }
                None => ignored[t][di] = outside(dr.w * dr.h),
            }
        }
    }
    ImgEval {
        scores: p.dt.iter().map(|r| r.score).collect(),
        matched,
        ignored,
        n_normal_gt: g.iter().filter(|(_, ig)| !ig).count(),
    }
}

/// precision[t][r] and recall[t] of one category, area and maxDets.
type Curves = (Vec<[f64; N_REC]>, [f64; N_THR]);

/// All detections of a category as (image, rank in image), by descending score; ties keep image
/// order then rank (pycocotools' mergesort over the concatenation). Cutting each image to its first
/// k keeps this order, so one sort serves every area range and maxDets.
fn score_order(evals: &[ImgEval]) -> Vec<(usize, usize)> {
    let mut idx: Vec<(usize, usize)> = Vec::new();
    for (i, e) in evals.iter().enumerate() {
        idx.extend((0..e.scores.len()).map(|d| (i, d)));
    }
    idx.sort_by(|a, b| evals[b.0].scores[b.1].total_cmp(&evals[a.0].scores[a.1]));
    idx
}

/// precision[t][r] and recall[t] for one category, area and maxDets; `None` = no normal GT (−1).
fn accumulate(evals: &[ImgEval], order: &[(usize, usize)], max_det: usize) -> Option<Curves> {
    let npig: usize = evals.iter().map(|e| e.n_normal_gt).sum();
    if npig == 0 {
        return None;
    }
    let idx: Vec<(usize, usize)> = order
        .iter()
        .copied()
        .filter(|&(_, d)| d < max_det)
        .collect();
    let mut precision = vec![[0.0; N_REC]; N_THR];
    let mut recall = [0.0; N_THR];
    for t in 0..N_THR {
        let (mut tp, mut fp) = (0usize, 0usize);
        let mut rc = Vec::with_capacity(idx.len());
        let mut pr = Vec::with_capacity(idx.len());
        for &(i, d) in &idx {
            if evals[i].ignored[t][d] {
                // neither: cumulative sums stay
            } else if evals[i].matched[t][d] {
                tp += 1;
            } else {
                fp += 1;
            }
            rc.push(tp as f64 / npig as f64);
            pr.push(tp as f64 / (fp as f64 + tp as f64 + f64::EPSILON));
        }
        recall[t] = rc.last().copied().unwrap_or(0.0);
        for i in (1..pr.len()).rev() {
            if pr[i] > pr[i - 1] {
                pr[i - 1] = pr[i];
            }
        }
        for (r, q) in precision[t].iter_mut().enumerate() {
            let pos = rc.partition_point(|&v| v < rec_threshold(r));
            match pr.get(pos) {
                Some(&p) => *q = p,
                None => break,
            }
        }
    }
    Some((precision, recall))
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        -1.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// One category: curves per area range, and recall per maxDets (area "all"); `None` = no normal GT.
type ClassCurves = (i64, Vec<Option<Curves>>, Vec<Option<[f64; N_THR]>>);

fn class_curves(images: &[ImageRecord], c: i64) -> ClassCurves {
    let prepared: Vec<Prepared> = images.iter().filter_map(|img| prepare(img, c)).collect();
    let mut per_area = Vec::with_capacity(AREAS.len());
    let mut rec = Vec::new();
    let mut order = Vec::new();
    for (ai, &area) in AREAS.iter().enumerate() {
        let evals: Vec<ImgEval> = prepared.iter().map(|p| evaluate_img(p, area)).collect();
        if ai == 0 {
            order = score_order(&evals);
        }
        per_area.push(accumulate(&evals, &order, MAX_DETS[3]));
        if ai == 0 {
            rec = MAX_DETS
                .iter()
                .map(|&k| accumulate(&evals, &order, k).map(|(_, r)| r))
                .collect();
        }
    }
    (c, per_area, rec)
}

/// The ten categories spread over threads, returned in category order.
fn per_class_parallel(images: &[ImageRecord]) -> Vec<ClassCurves> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(10);
    if threads < 2 || images.len() < 64 {
        return (1..=10).map(|c| class_curves(images, c)).collect();
    }
    let mut out: Vec<ClassCurves> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (1..=10i64)
                        .filter(|c| (*c as usize - 1) % threads == t)
                        .map(|c| class_curves(images, c))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    out.sort_by_key(|(c, _, _)| *c);
    out
}

/// Scores images (as read from the files) with COCO rules; `areas` holds AP small/medium/large.
pub fn evaluate(mut images: Vec<ImageRecord>) -> VisdroneResult {
    let _span = tracing::info_span!("coco_eval", images = images.len()).entered();
    for img in &mut images {
        drop_in_ignored(img);
    }
    let mut classes = Vec::new();
    let (mut ap_all, mut ap50, mut ap75) = (Vec::new(), Vec::new(), Vec::new());
    let mut ar: [Vec<f64>; 4] = Default::default();
    let mut ap_area: [Vec<f64>; 3] = Default::default();
    for (c, per_area, rec) in per_class_parallel(&images) {
        for (ai, pa) in per_area.iter().enumerate().skip(1) {
            if let Some((p, _)) = pa {
                ap_area[ai - 1].extend(p.iter().flatten());
            }
        }
        let Some((prec, _)) = &per_area[0] else {
            continue;
        };
        let mut res = ClassResult {
            class_id: c,
            images: images
                .iter()
                .filter(|i| i.gt.iter().any(|r| r.category == c))
                .count(),
            n_gt: images
                .iter()
                .map(|i| i.gt.iter().filter(|r| r.category == c).count())
                .sum(),
            ..Default::default()
        };
        for (m, rec) in rec.iter().enumerate() {
            if let Some(rec) = rec {
                for (row, &r) in res.ar.iter_mut().zip(rec) {
                    row[m] = r;
                }
                ar[m].extend_from_slice(rec);
            }
        }
        for (ap, p) in res.ap.iter_mut().zip(prec) {
            *ap = mean(p);
        }
        ap_all.extend(prec.iter().flatten());
        ap50.extend_from_slice(&prec[0]);
        ap75.extend_from_slice(&prec[5]);
        res.pr_curve = (0..N_REC).map(|r| (rec_threshold(r), prec[0][r])).collect();
        classes.push(res);
    }
    let summary = Summary {
        ap: mean(&ap_all),
        ap50: mean(&ap50),
        ap75: mean(&ap75),
        ar1: mean(&ar[0]),
        ar10: mean(&ar[1]),
        ar100: mean(&ar[2]),
        ar500: mean(&ar[3]),
    };
    VisdroneResult {
        summary,
        classes,
        areas: Some([mean(&ap_area[0]), mean(&ap_area[1]), mean(&ap_area[2])]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The threaded path (≥ 64 images) gives bit-identical curves to the sequential one.
    #[test]
    fn parallel_classes_equal_sequential() {
        let mut images = crate::eval::bench::synthetic_images(80, 60);
        for img in &mut images {
            drop_in_ignored(img);
        }
        let seq: Vec<ClassCurves> = (1..=10).map(|c| class_curves(&images, c)).collect();
        assert_eq!(per_class_parallel(&images), seq);
    }
}
