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

fn evaluate_img(gt: &[&Row], dt: &[&Row], area: (f64, f64)) -> Option<ImgEval> {
    if gt.is_empty() && dt.is_empty() {
        return None;
    }
    let outside = |a: f64| a < area.0 || a > area.1;
    let mut g: Vec<(&Row, bool)> = gt
        .iter()
        .map(|r| (*r, r.score == 0.0 || outside(r.w * r.h)))
        .collect();
    g.sort_by_key(|(_, ig)| *ig);
    let mut d: Vec<&Row> = dt.to_vec();
    d.sort_by(|a, b| b.score.total_cmp(&a.score));
    d.truncate(MAX_DETS[3]);
    let (nd, ng) = (d.len(), g.len());
    let mut matched = vec![vec![false; nd]; N_THR];
    let mut ignored = vec![vec![false; nd]; N_THR];
    for t in 0..N_THR {
        let mut gt_used = vec![false; ng];
        for (di, dr) in d.iter().enumerate() {
            let mut best = coco_threshold(t).min(1.0 - 1e-10);
            let mut m: Option<usize> = None;
            for (gi, (gr, g_ig)) in g.iter().enumerate() {
                let crowd = gr.score == 0.0;
                if gt_used[gi] && !crowd {
                    continue;
                }
                if let Some(mi) = m {
                    if !g[mi].1 && *g_ig {
                        break;
                    }
                }
                let o = overlap([dr.x, dr.y, dr.w, dr.h], [gr.x, gr.y, gr.w, gr.h], crowd);
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
    Some(ImgEval {
        scores: d.iter().map(|r| r.score).collect(),
        matched,
        ignored,
        n_normal_gt: g.iter().filter(|(_, ig)| !ig).count(),
    })
}

/// precision[t][r] and recall[t] of one category, area and maxDets.
type Curves = (Vec<[f64; N_REC]>, [f64; N_THR]);

/// precision[t][r] and recall[t] for one category, area and maxDets; `None` = no normal GT (−1).
fn accumulate(evals: &[ImgEval], max_det: usize) -> Option<Curves> {
    let npig: usize = evals.iter().map(|e| e.n_normal_gt).sum();
    if npig == 0 {
        return None;
    }
    let mut idx: Vec<(usize, usize)> = Vec::new();
    for (i, e) in evals.iter().enumerate() {
        idx.extend((0..e.scores.len().min(max_det)).map(|d| (i, d)));
    }
    idx.sort_by(|a, b| evals[b.0].scores[b.1].total_cmp(&evals[a.0].scores[a.1]));
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
    for c in 1..=10i64 {
        let per_area: Vec<Option<Curves>> = AREAS
            .iter()
            .map(|&area| {
                let evals: Vec<ImgEval> = images
                    .iter()
                    .filter_map(|img| {
                        let gt: Vec<&Row> = img.gt.iter().filter(|r| r.category == c).collect();
                        let dt: Vec<&Row> = img.det.iter().filter(|r| r.category == c).collect();
                        evaluate_img(&gt, &dt, area)
                    })
                    .collect();
                accumulate(&evals, MAX_DETS[3])
            })
            .collect();
        for (ai, pa) in per_area.iter().enumerate().skip(1) {
            if let Some((p, _)) = pa {
                ap_area[ai - 1].extend(p.iter().flatten());
            }
        }
        let Some((prec, _)) = &per_area[0] else {
            continue;
        };
        let evals_all: Vec<ImgEval> = images
            .iter()
            .filter_map(|img| {
                let gt: Vec<&Row> = img.gt.iter().filter(|r| r.category == c).collect();
                let dt: Vec<&Row> = img.det.iter().filter(|r| r.category == c).collect();
                evaluate_img(&gt, &dt, AREAS[0])
            })
            .collect();
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
        for (m, &k) in MAX_DETS.iter().enumerate() {
            if let Some((_, rec)) = accumulate(&evals_all, k) {
                for (row, &r) in res.ar.iter_mut().zip(&rec) {
                    row[m] = r;
                }
                ar[m].extend_from_slice(&rec);
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
