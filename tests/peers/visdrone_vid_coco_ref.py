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

sys.path.insert(0, os.path.dirname(__file__))
from coco_ref import coco_summary  # noqa: E402
from visdrone_vid_ref import frames_of, load  # noqa: E402


def main():
    root = sys.argv[1]
    images = []
    for n in sorted(n[:-4] for n in os.listdir(os.path.join(root, "annotations")) if n.endswith(".txt")):
        H, W = cv2.imread(os.path.join(root, "sequences", n, "0000001.jpg")).shape[:2]
        frames = frames_of(load(os.path.join(root, "annotations", n + ".txt")),
                           load(os.path.join(root, "results", n + ".txt")), W, H)
        images += [{"name": n, "W": W, "H": H, "gt": g, "dt": d} for g, d in frames]
    print(json.dumps(coco_summary(images)))


if __name__ == "__main__":
    main()
