#!/usr/bin/env python3
"""Independent peer for `kestrel eval` on VisDrone-VID layouts: the VisDrone2018-VID toolkit's
algorithm re-implemented directly in numpy (dense-mask region removal per frame, Dollar's greedy
matching per frame and class, first k lines per frame and class, VOC AP, sequence-weighted mean).

usage: visdrone_vid_ref.py SET_DIR   (annotations/, sequences/<seq>/0000001.jpg, results/) -> JSON
"""
import json
import os
import sys

import cv2
import numpy as np

from visdrone_ref import keep_mask, voc_ap

THRS = [0.5 + k * 0.05 for k in range(10)]  # Octave's 0.5:0.05:0.95
MAX_DETS = [1, 10, 100, 500]


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip().rstrip(",")
            if line:
                rows.append([float(v) for v in line.split(",")])
    return rows


def frames_of(gt, dt, W, H):
    """Per evaluated frame: (gt rows [x,y,w,h,score,cat], det rows) after per-frame region removal."""
    last = int(max(r[0] for r in gt)) if gt else 0
    out = []
    for fr in range(1, last + 1):
        g = [r[2:8] for r in gt if r[0] == fr and r[7] != 0]
        d = [r[2:8] for r in dt if r[0] == fr]
        regions = [r[2:8] for r in gt if r[0] == fr and r[7] == 0]
        if regions:
            g = [r for r, k in zip(g, keep_mask(g, regions, W, H)) if k]
            d = [r for r, k in zip(d, keep_mask(d, regions, W, H)) if k]
        if g:
            out.append((g, d))
    return out


def overlap(d, g, ignore):
    w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
    h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
    if w <= 0 or h <= 0:
        return 0.0
    t = w * h
    return t / (d[2] * d[3] if ignore else d[2] * d[3] + g[2] * g[3] - t)


def eval_res(gt, dt, thr):
    """Dollar's evalRes: returns (n_gt, [(score, flag)]) with flag 1 TP, 0 FP, -1 ignored."""
    dt = sorted(dt, key=lambda r: -r[4])  # Python's sort is stable
    gt = sorted(gt, key=lambda r: r[4] == 0)  # normal GT first, stable
    ig = [r[4] == 0 for r in gt]
    taken = [False] * len(gt)
    out = []
    for d in dt:
        best, bg, bm = thr, -1, 0
        for j, g in enumerate(gt):
            if taken[j]:
                continue
            if bm != 0 and ig[j]:
                break
            o = overlap(d, g, ig[j])
            if o < best:
                continue
            best, bg, bm = o, j, (-1 if ig[j] else 1)
        if bm == 1:
            taken[bg] = True
        out.append((d[4], bm))
    return len(gt), out


def main():
    root = sys.argv[1]
    names = sorted(n[:-4] for n in os.listdir(os.path.join(root, "annotations")) if n.endswith(".txt"))
    seqs = []
    for n in names:
        H, W = cv2.imread(os.path.join(root, "sequences", n, "0000001.jpg")).shape[:2]
        seqs.append(frames_of(load(os.path.join(root, "annotations", n + ".txt")),
                              load(os.path.join(root, "results", n + ".txt")), W, H))
    per_class = {}
    for c in range(1, 11):
        weight = sum(any(r[5] == c for g, _ in frames for r in g) for frames in seqs)
        if weight == 0:
            continue
        ap = np.zeros(10)
        ar = np.zeros((10, 4))
        for t, thr in enumerate(THRS):
            for k, md in enumerate(MAX_DETS):
                n_gt, matches = 0, []
                for frames in seqs:
                    for g, d in frames:
                        n, m = eval_res([r for r in g if r[5] == c], [r for r in d if r[5] == c][:md], thr)
                        n_gt += n
                        matches += m
                order = np.argsort([-s for s, _ in matches], kind="mergesort")
                flags = np.array([matches[i][1] for i in order], dtype=int)
                tp = np.cumsum(flags == 1)
                fp = np.cumsum(flags == 0)
                rec = tp / max(1, n_gt)
                if len(rec):
                    ar[t, k] = rec.max()
            ap[t] = voc_ap(rec, tp / np.maximum(1, tp + fp)) if len(rec) else 0.0
        per_class[c] = {"weight": weight, "AP": ap.mean(), "AP50": ap[0], "AP75": ap[5],
                        **{"AR%d" % m: ar[:, k].mean() for k, m in enumerate(MAX_DETS)}}
    total = sum(v["weight"] for v in per_class.values())
    res = {key: sum(v["weight"] * v[key] for v in per_class.values()) / total
           for key in ["AP", "AP50", "AP75", "AR1", "AR10", "AR100", "AR500"]}
    res["per_class"] = {str(c): v for c, v in per_class.items()}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
