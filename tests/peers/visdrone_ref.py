#!/usr/bin/env python3
"""Independent peer for `kestrel eval --protocol visdrone` (VisDrone-DET): the official toolkit's
numbers rebuilt from pycocotools' per-image matching (docs/evaluation.md, "rebuild").

usage: visdrone_ref.py SET_DIR   (SET_DIR has annotations/, images/, results/) -> JSON on stdout
"""
import json
import os
import sys
import contextlib
import io

import cv2
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def load_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip().rstrip(",")
            if line:
                rows.append([float(v) for v in line.split(",")][:6])
    return rows


def keep_mask(rows, regions, W, H):
    """The toolkit's dropObjectsInIgr on a dense 1-based mask (independent of Kestrel's code)."""
    mask = np.zeros((H + 1, W + 1), np.int64)
    for r in regions:
        rx, ry, rw, rh = [max(1, int(round(v))) for v in r[:4]]
        mask[ry:min(H, ry + rh) + 1, rx:min(W, rx + rw) + 1] = 1
    mask[0, :] = 0
    mask[:, 0] = 0
    I = mask.cumsum(0).cumsum(1)
    keep = []
    for b in rows:
        px, py, bw, bh = [max(1, int(np.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)) for v in b[:4]]
        x, y = min(W, px), min(H, py)
        xr, yb = min(W, x + bw), min(H, y + bh)
        v = I[y, x] + I[yb, xr] - I[y, xr] - I[yb, x]
        keep.append(v / (bw * bh) < 0.5)
    return keep


def load_set(root):
    names = sorted(n[:-4] for n in os.listdir(os.path.join(root, "annotations")) if n.endswith(".txt"))
    images = []
    for name in names:
        gt = load_rows(os.path.join(root, "annotations", name + ".txt"))
        dt = load_rows(os.path.join(root, "results", name + ".txt"))
        H, W = cv2.imread(os.path.join(root, "images", name + ".jpg")).shape[:2]
        regions = [r for r in gt if r[5] == 0]
        gt = [r for r in gt if r[5] != 0]
        if regions:
            gt = [r for r, k in zip(gt, keep_mask(gt, regions, W, H)) if k]
            dt = [r for r, k in zip(dt, keep_mask(dt, regions, W, H)) if k]
        images.append({"name": name, "W": W, "H": H, "gt": gt, "dt": dt})
    return images


def coco_eval(images, max_dets, truncate=None, area_all_only=True):
    """Runs pycocotools on the converted set; `truncate` keeps the first k result lines per image."""
    gts, dts = [], []
    for i, im in enumerate(images, 1):
        for r in im["gt"]:
            if 1 <= r[5] <= 10:
                gts.append({"id": len(gts) + 1, "image_id": i, "category_id": int(r[5]), "bbox": r[:4],
                            "area": r[2] * r[3], "iscrowd": int(r[4] == 0)})
        rows = im["dt"] if truncate is None else im["dt"][:truncate]
        for r in rows:
            if 1 <= r[5] <= 10:
                dts.append({"image_id": i, "category_id": int(r[5]), "bbox": r[:4], "score": r[4]})
    gt = COCO()
    gt.dataset = {"images": [{"id": i, "width": im["W"], "height": im["H"]} for i, im in enumerate(images, 1)],
                  "categories": [{"id": c} for c in range(1, 11)], "annotations": gts}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dts) if dts else COCO()
        if not dts:
            dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"], "annotations": []}
            dt.createIndex()
        E = COCOeval(gt, dt, "bbox")
        E.params.maxDets = max_dets
        if area_all_only:
            E.params.areaRng = [[0, 1e10]]
            E.params.areaRngLbl = ["all"]
        E.evaluate()
        E.accumulate()
    return E


def voc_ap(rec, prec):
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    i = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def rebuild(images, k):
    """Per class: AP[t], AR[t] from pycocotools matches with the first k lines of each image."""
    E = coco_eval(images, [10 ** 9], truncate=k)
    nI = len(images)
    out = {}
    for ci, c in enumerate(E.params.catIds):
        evs = [E.evalImgs[ci * nI + i] for i in range(nI)]
        evs = [e for e in evs if e is not None]
        n_gt = sum(len(e["gtIds"]) for e in evs)
        if n_gt == 0:
            continue
        scores = np.concatenate([e["dtScores"] for e in evs]) if evs else np.zeros(0)
        order = np.argsort(-scores, kind="mergesort")
        aps, ars = [], []
        for t in range(len(E.params.iouThrs)):
            dtm = np.concatenate([e["dtMatches"][t] for e in evs])[order] if evs else np.zeros(0)
            dig = np.concatenate([e["dtIgnore"][t] for e in evs])[order] if evs else np.zeros(0)
            tp = np.cumsum((dtm > 0) & (dig == 0))
            fp = np.cumsum((dtm == 0) & (dig == 0))
            rec = tp / max(1, n_gt)
            prec = tp / np.maximum(1, tp + fp)
            aps.append(voc_ap(rec, prec) if len(rec) else 0.0)
            ars.append(float(rec[-1]) if len(rec) else 0.0)
        out[c] = (aps, ars)
    return out


def main():
    images = load_set(sys.argv[1])
    weights = {c: sum(any(r[5] == c for r in im["gt"]) for im in images) for c in range(1, 11)}
    full = rebuild(images, 500)
    ar = {k: rebuild(images, k) for k in (1, 10, 100)}
    ar[500] = full
    total = sum(weights[c] for c in full)
    wmean = lambda f: sum(weights[c] * f(c) for c in full) / total
    res = {
        "AP": wmean(lambda c: np.mean(full[c][0])),
        "AP50": wmean(lambda c: full[c][0][0]),
        "AP75": wmean(lambda c: full[c][0][5]),
    }
    for k in (1, 10, 100, 500):
        res["AR%d" % k] = wmean(lambda c: np.mean(ar[k][c][1]) if c in ar[k] else 0.0)
    res["per_class"] = {str(c): {"AP": float(np.mean(full[c][0])), "images": weights[c]} for c in full}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
