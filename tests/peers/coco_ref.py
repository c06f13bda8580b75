#!/usr/bin/env python3
"""Peer for `kestrel eval --protocol coco`: pycocotools 2.0.11 on the converted set
(ignored-region removal first, then VisDrone ids 1..10 as COCO categories, iscrowd = score 0).

usage: coco_ref.py SET_DIR -> JSON on stdout (fractions)
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from visdrone_ref import coco_eval, load_set  # noqa: E402


def mean_valid(a):
    a = a[a > -1]
    return float(np.mean(a)) if a.size else -1.0


def coco_summary(images):
    """pycocotools on converted images: the seven numbers plus AP small/medium/large."""
    E = coco_eval(images, [1, 10, 100, 500], area_all_only=False)
    p, r = E.eval["precision"], E.eval["recall"]
    res = {"AP": mean_valid(p[:, :, :, 0, 3]), "AP50": mean_valid(p[0, :, :, 0, 3]),
           "AP75": mean_valid(p[5, :, :, 0, 3]),
           "APs": mean_valid(p[:, :, :, 1, 3]), "APm": mean_valid(p[:, :, :, 2, 3]),
           "APl": mean_valid(p[:, :, :, 3, 3])}
    for m, k in enumerate((1, 10, 100, 500)):
        res["AR%d" % k] = mean_valid(r[:, :, 0, m])
    return res


def main():
    print(json.dumps(coco_summary(load_set(sys.argv[1]))))


if __name__ == "__main__":
    main()
