#!/usr/bin/env python3
"""Independent reference for Kestrel's engine: OpenCV DNN 4.x running a Darknet cfg + .weights.

Given cfg, weights, image, input size and resize mode it writes (into --out-dir):
  blob.f32            the network input [1,3,H,W], float32 little-endian
  head_<k>.f32        the raw output of the conv layer feeding the k-th [yolo] layer
                      ([1, A*(5+C), gh, gw], float32 LE), k in cfg order
and prints one JSON object: input shape, heads (name, shape, file), transform and detections
decoded the Darknet way (score = sigmoid(obj) * sigmoid(cls), per-class greedy NMS) in
original-image pixels, bbox = [x, y, w, h] top-left.

How the raw conv outputs are obtained: OpenCV's Darknet importer turns each [yolo] block into
two layers, `permute_<n>` followed by `yolo_<n>` (see net.getLayerNames()). The layer listed
just before `permute_<n>` is the detection conv (`conv_<m>`, linear with bias, so nothing is
fused into it); net.forward([those names]) returns exactly its output, before any decode.
The decode below reads only those raw tensors, not OpenCV's own region-layer output.

Resize modes: stretch = cv2.dnn.blobFromImage(img, 1/255, (W, H), swapRB=True);
letterbox = Darknet's letterbox done here: new size by Darknet's integer rule, cv2.resize
INTER_LINEAR, pasted centred (integer offset) on a 0.5-grey canvas, then blobFromImage
without resizing. --blob-in feeds a given blob instead (same input for both engines).
--bench N times preprocess and net.forward N times (after 2 warm-up runs) and prints medians.
"""
import argparse
import json
import os
import sys
import time

import cv2
import numpy as np


def parse_yolo_blocks(cfg_path):
    """[yolo] blocks in cfg order: (mask, anchors, classes)."""
    blocks, cur = [], None
    with open(cfg_path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].split(";")[0].strip()
            if not line:
                continue
            if line.startswith("["):
                cur = {"type": line.strip("[]").strip()}
                blocks.append(cur)
            elif "=" in line and cur is not None:
                k, v = line.split("=", 1)
                cur[k.strip()] = v.strip()
    out = []
    for b in blocks:
        if b["type"] != "yolo":
            continue
        anchors = [float(x) for x in b["anchors"].split(",") if x.strip()]
        anchors = list(zip(anchors[0::2], anchors[1::2]))
        num = int(b.get("num", len(anchors)))
        mask = [int(x) for x in b["mask"].split(",")] if "mask" in b else list(range(num))
        out.append({"mask": mask, "anchors": anchors, "classes": int(b["classes"]),
                    "scale_x_y": float(b.get("scale_x_y", 1.0))})
    return out


def letterbox_size(iw, ih, nw, nh):
    if nw * ih < nh * iw:
        return nw, max(1, (ih * nw) // iw)
    return max(1, (iw * nh) // ih), nh


def make_blob(img_bgr, W, H, mode):
    ih, iw = img_bgr.shape[:2]
    if mode == "stretch":
        blob = cv2.dnn.blobFromImage(img_bgr, 1 / 255.0, (W, H), swapRB=True, crop=False)
        tr = {"scale_x": W / iw, "scale_y": H / ih, "pad_x": 0.0, "pad_y": 0.0}
        return blob, tr
    nw, nh = letterbox_size(iw, ih, W, H)
    resized = cv2.resize(img_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((H, W, 3), 0.5, dtype=np.float32)
    ox, oy = (W - nw) // 2, (H - nh) // 2
    canvas[oy:oy + nh, ox:ox + nw] = resized.astype(np.float32) * np.float32(1 / 255.0)
    blob = cv2.dnn.blobFromImage(canvas, 1.0, (W, H), swapRB=True, crop=False)
    tr = {"scale_x": nw / iw, "scale_y": nh / ih, "pad_x": float(ox), "pad_y": float(oy)}
    return blob, tr


def head_layer_names(net):
    names = list(net.getLayerNames())
    heads = []
    for i, n in enumerate(names):
        if n.startswith("permute_"):
            heads.append(names[i - 1])
    return heads


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def decode(raws, yolos, W, H, conf):
    """Darknet get_yolo_box: rows of (cx, cy, w, h) in network pixels, obj, cls probs."""
    cands = []
    for raw, y in zip(raws, yolos):
        _, ch, gh, gw = raw.shape
        C = y["classes"]
        A = len(y["mask"])
        assert ch == A * (5 + C), f"head channels {ch} != {A}*(5+{C})"
        r = raw[0].reshape(A, 5 + C, gh, gw).astype(np.float64)
        cols, rows = np.meshgrid(np.arange(gw), np.arange(gh))
        for a, m in enumerate(y["mask"]):
            aw, ah = y["anchors"][m]
            cx = (cols + sigmoid(r[a, 0])) / gw * W
            cy = (rows + sigmoid(r[a, 1])) / gh * H
            bw = np.exp(r[a, 2]) * aw
            bh = np.exp(r[a, 3]) * ah
            obj = sigmoid(r[a, 4])
            cls = sigmoid(r[a, 5:])
            for (row, col) in zip(*np.nonzero(obj > conf)):
                for c in range(C):
                    s = obj[row, col] * cls[c, row, col]
                    if s > conf:
                        cands.append((c, float(s), cx[row, col], cy[row, col],
                                      bw[row, col], bh[row, col]))
    return cands


def iou(a, b):
    def ov(c1, s1, c2, s2):
        return max(0.0, min(c1 + s1 / 2, c2 + s2 / 2) - max(c1 - s1 / 2, c2 - s2 / 2))
    inter = ov(a[2], a[4], b[2], b[4]) * ov(a[3], a[5], b[3], b[5])
    union = a[4] * a[5] + b[4] * b[5] - inter
    return inter / union if union > 0 else 0.0


def nms(cands, thr):
    cands = sorted(cands, key=lambda c: -c[1])
    kept = []
    for c in cands:
        if not any(k[0] == c[0] and iou(k, c) > thr for k in kept):
            kept.append(c)
    return kept


def to_image(c, tr, iw, ih):
    x0 = min(max((c[2] - c[4] / 2 - tr["pad_x"]) / tr["scale_x"], 0), iw)
    x1 = min(max((c[2] + c[4] / 2 - tr["pad_x"]) / tr["scale_x"], 0), iw)
    y0 = min(max((c[3] - c[5] / 2 - tr["pad_y"]) / tr["scale_y"], 0), ih)
    y1 = min(max((c[3] + c[5] / 2 - tr["pad_y"]) / tr["scale_y"], 0), ih)
    return {"class_id": c[0], "score": c[1], "bbox": [x0, y0, x1 - x0, y1 - y0]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--width", type=int, default=416)
    p.add_argument("--height", type=int, default=416)
    p.add_argument("--resize", choices=["letterbox", "stretch"], default="letterbox")
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--nms", type=float, default=0.45)
    p.add_argument("--out-dir", help="write blob.f32 and head_<k>.f32 here")
    p.add_argument("--blob-in", help="use this [1,3,H,W] float32 LE file as the input")
    p.add_argument("--bench", type=int, default=0, help="time N iterations, print medians")
    a = p.parse_args()

    major = int(cv2.__version__.split(".")[0])
    if major >= 5:
        sys.exit(f"OpenCV {cv2.__version__}: 5.x has no Darknet importer; install opencv-python-headless<5")
    img = cv2.imread(a.image, cv2.IMREAD_COLOR)
    if img is None:
        sys.exit(f"{a.image}: cannot read image")
    ih, iw = img.shape[:2]
    W, H = a.width, a.height
    net = cv2.dnn.readNetFromDarknet(a.cfg, a.weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    yolos = parse_yolo_blocks(a.cfg)
    heads = head_layer_names(net)
    assert len(heads) == len(yolos), f"{len(heads)} permute layers vs {len(yolos)} [yolo] blocks"

    blob, tr = make_blob(img, W, H, a.resize)
    if a.blob_in:
        blob = np.fromfile(a.blob_in, dtype="<f4").reshape(1, 3, H, W)
    net.setInput(blob)
    raws = net.forward(heads)

    if a.bench:
        pre, fwd, post = [], [], []
        for i in range(a.bench + 2):
            t0 = time.perf_counter()
            b, _ = make_blob(img, W, H, a.resize)
            t1 = time.perf_counter()
            net.setInput(b)
            r = net.forward(heads)
            t2 = time.perf_counter()
            nms(decode(r, yolos, W, H, a.conf), a.nms)
            t3 = time.perf_counter()
            if i >= 2:
                pre.append(t1 - t0); fwd.append(t2 - t1); post.append(t3 - t2)
        med = lambda v: float(np.median(v) * 1e3)
        p90 = lambda v: float(np.percentile(v, 90) * 1e3)
        print(json.dumps({"engine": f"opencv-dnn {cv2.__version__}", "threads": cv2.getNumThreads(),
                          "iters": a.bench, "width": W, "height": H,
                          "preprocess": {"median_ms": med(pre), "p90_ms": p90(pre)},
                          "forward": {"median_ms": med(fwd), "p90_ms": p90(fwd)},
                          "decode_nms": {"median_ms": med(post), "p90_ms": p90(post)}}))
        return

    heads_json = []
    if a.out_dir:
        os.makedirs(a.out_dir, exist_ok=True)
        blob.astype("<f4").tofile(os.path.join(a.out_dir, "blob.f32"))
    for k, (name, r) in enumerate(zip(heads, raws)):
        entry = {"name": name, "shape": list(r.shape)}
        if a.out_dir:
            f = os.path.join(a.out_dir, f"head_{k}.f32")
            np.ascontiguousarray(r, dtype="<f4").tofile(f)
            entry["file"] = f
        heads_json.append(entry)
    dets = [to_image(c, tr, iw, ih) for c in nms(decode(raws, yolos, W, H, a.conf), a.nms)]
    print(json.dumps({"opencv": cv2.__version__, "input": [1, 3, H, W], "width": iw, "height": ih,
                      "transform": tr, "heads": heads_json, "detections": dets}))


if __name__ == "__main__":
    main()
