#!/usr/bin/env python3
"""Peer for `kestrel eval --protocol coco` on a VisDrone-VID set: pycocotools 2.0.11 on the frames
the VID toolkit evaluates (per-frame region removal as in visdrone_vid_ref.py; image = frame, in
sequence then frame order).

usage: visdrone_vid_coco_ref.py SET_DIR -> JSON on stdout (fractions)
"""
import json
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from visdrone_ref import coco_eval  # noqa: E402
from visdrone_vid_ref import frames_of, load  # noqa: E402


def mean_valid(a):
    a = a[a > -1]
    return float(np.mean(a)) if a.size else -1.0


def main():
    root = sys.argv[1]
    images = []
    for n in sorted(n[:-4] for n in os.listdir(os.path.join(root, "annotations")) if n.endswith(".txt")):
        H, W = cv2.imread(os.path.join(root, "sequences", n, "0000001.jpg")).shape[:2]
        frames = frames_of(load(os.path.join(root, "annotations", n + ".txt")),
                           load(os.path.join(root, "results", n + ".txt")), W, H)
        images += [{"name": n, "W": W, "H": H, "gt": g, "dt": d} for g, d in frames]
    E = coco_eval(images, [1, 10, 100, 500], area_all_only=False)
    p, r = E.eval["precision"], E.eval["recall"]
    res = {"AP": mean_valid(p[:, :, :, 0, 3]), "AP50": mean_valid(p[0, :, :, 0, 3]),
           "AP75": mean_valid(p[5, :, :, 0, 3]),
           "APs": mean_valid(p[:, :, :, 1, 3]), "APm": mean_valid(p[:, :, :, 2, 3]),
           "APl": mean_valid(p[:, :, :, 3, 3])}
    for m, k in enumerate((1, 10, 100, 500)):
        res["AR%d" % k] = mean_valid(r[:, :, 0, m])
    print(json.dumps(res))


if __name__ == "__main__":
    main()
