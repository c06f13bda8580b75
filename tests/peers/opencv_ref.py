#!/usr/bin/env python3
"""Independent reference: OpenCV DNN (4.x Darknet importer) on a Darknet cfg + .weights.

Usage: opencv_ref.py CFG WEIGHTS IMAGE WIDTH HEIGHT {stretch|letterbox} CONF NMS OUTDIR
Writes OUTDIR/head_<i>.f32 (raw conv output feeding the i-th [yolo] layer, float32 NCHW, i in cfg
order) and prints one JSON object: {"heads": [[c,h,w],...], "detections": [...]} with detections
decoded the Darknet way from OpenCV's raw head outputs (score = obj * cls, per-class NMS with
cv2.dnn.NMSBoxes) in original-image pixels, clipped to the image.

Raw outputs: OpenCV names Darknet layers "conv_<i>", "yolo_<i>" etc. by cfg index; the conv that
feeds a [yolo] at index i is layer i-1, so we ask net.forward for "conv_<i-1>".
Letterbox: Darknet's geometry (integer division), cv2.resize INTER_LINEAR into a 0.5 grey canvas,
then fed without further resizing. Stretch: blobFromImage(img, 1/255, (W, H), swapRB=True).
"""
import json, os, sys
import numpy as np
import cv2


def yolo_layers(cfg_path):
    idx, out, cur = -1, [], None
    anchors = mask = classes = None
    sections = []
    for line in open(cfg_path, encoding="utf-8", errors="replace"):
        line = line.split("#")[0].split(";")[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append([line.strip("[]").strip(), {}])
            continue
        k, v = line.split("=", 1)
        sections[-1][1][k.strip()] = v.strip()
    for i, (name, kv) in enumerate(sections[1:]):
        if name == "yolo":
            a = [float(x) for x in kv["anchors"].split(",") if x.strip()]
            a = list(zip(a[0::2], a[1::2]))
            m = [int(x) for x in kv["mask"].split(",")]
            out.append((i, [a[j] for j in m], int(kv.get("classes", 20))))
    return out


def letterbox(img_rgb, W, H):
    ih, iw = img_rgb.shape[:2]
    if W / iw < H / ih:
        nw, nh = W, max(1, ih * W // iw)
    else:
        nw, nh = max(1, iw * H // ih), H
    ox, oy = (W - nw) // 2, (H - nh) // 2
    canvas = np.full((H, W, 3), 0.5, np.float32)
    resized = img_rgb if (nw, nh) == (iw, ih) else cv2.resize(img_rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas[oy:oy + nh, ox:ox + nw] = resized.astype(np.float32) / 255.0
    return canvas.transpose(2, 0, 1)[None].copy(), (ox, oy, nw, nh)


def main():
    cfg, weights, image, W, H, mode, conf, nms, outdir = sys.argv[1:10]
    W, H, conf, nms = int(W), int(H), float(conf), float(nms)
    os.makedirs(outdir, exist_ok=True)
    bgr = cv2.imread(image, cv2.IMREAD_COLOR)
    if bgr is None:
        sys.exit(f"cannot read {image}")
    ih, iw = bgr.shape[:2]
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    if mode == "stretch":
        blob = cv2.dnn.blobFromImage(bgr, 1 / 255.0, (W, H), swapRB=True, crop=False)
        place = (0, 0, W, H)
    else:
        blob, place = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), W, H)
    net.setInput(blob)
    heads = yolo_layers(cfg)
    names = [f"conv_{i - 1}" for i, _, _ in heads]
    outs = net.forward(names)
    ox, oy, nw, nh = place
    boxes, scores, classes, shapes = [], [], [], []
    for k, ((i, anchors, nc), raw) in enumerate(zip(heads, outs)):
        raw = np.ascontiguousarray(raw, dtype=np.float32)
        raw.tofile(os.path.join(outdir, f"head_{k}.f32"))
        _, c, gh, gw = raw.shape
        shapes.append([c, gh, gw])
        t = raw.reshape(len(anchors), 5 + nc, gh, gw).astype(np.float64)
        sig = lambda v: 1.0 / (1.0 + np.exp(-v))
        for a, (aw, ah) in enumerate(anchors):
            obj = sig(t[a, 4])
            rows, cols = np.nonzero(obj > conf)
            for r, cidx in zip(rows, cols):
                cx = (cidx + sig(t[a, 0, r, cidx])) * W / gw
                cy = (r + sig(t[a, 1, r, cidx])) * H / gh
                bw = np.exp(t[a, 2, r, cidx]) * aw
                bh = np.exp(t[a, 3, r, cidx]) * ah
                x0 = np.clip((cx - bw / 2 - ox) * iw / nw, 0, iw)
                y0 = np.clip((cy - bh / 2 - oy) * ih / nh, 0, ih)
                x1 = np.clip((cx + bw / 2 - ox) * iw / nw, 0, iw)
                y1 = np.clip((cy + bh / 2 - oy) * ih / nh, 0, ih)
                if x1 <= x0 or y1 <= y0:
                    continue
                p = obj[r, cidx] * sig(t[a, 5:, r, cidx])
                for cls in np.nonzero(p > conf)[0]:
                    boxes.append([float(x0), float(y0), float(x1 - x0), float(y1 - y0)])
                    scores.append(float(p[cls]))
                    classes.append(int(cls))
    dets = []
    for cls in sorted(set(classes)):
        idx = [j for j, c in enumerate(classes) if c == cls]
        keep = cv2.dnn.NMSBoxes([boxes[j] for j in idx], [scores[j] for j in idx], conf, nms)
        for k in np.array(keep).flatten():
            j = idx[int(k)]
            dets.append({"class_id": cls, "score": scores[j], "bbox": boxes[j]})
    dets.sort(key=lambda d: -d["score"])
    print(json.dumps({"heads": shapes, "detections": dets, "opencv": cv2.__version__}))


if __name__ == "__main__":
    main()
