"""Correctness check of the reference exporter: ORT on the exported ONNX vs OpenCV DNN's raw
head-conv outputs, same cfg/weights/letterboxed input. Prints max relative diff per head and
exits 1 if any exceeds the tolerance.

Usage: check_export.py CFG WEIGHTS SIZE MODEL.onnx IMAGE [TOL]
"""

import sys

import cv2
import numpy as np
import onnxruntime as ort

import darknet


def opencv_heads(cfg, weights, layers, x):
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    names = net.getLayerNames()
    wanted = []
    for j in darknet.yolo_inputs(layers):
        # OpenCV names the conv of Darknet layer j "conv_j"; a BN/activation follows as bn_j/relu_j.
        cands = [n for n in (f"relu_{j}", f"bn_{j}", f"conv_{j}") if n in names]
        if not cands:
            raise SystemExit(f"check: no OpenCV layer for Darknet layer {j}")
        wanted.append(cands[0])
    net.setInput(x)
    return net.forward(wanted)


def main():
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__)
    cfg, weights, size, onnx_path, image = sys.argv[1:6]
    tol = float(sys.argv[6]) if len(sys.argv) == 7 else 1e-3
    _net, layers = darknet.parse_cfg(cfg, int(size))
    x = darknet.letterbox(image, int(size))
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    ours = sess.run(None, {"data": x})
    ref = opencv_heads(cfg, weights, layers, x)
    worst = 0.0
    for n, (a, b) in enumerate(zip(ours, ref)):
        b = b.reshape(a.shape)
        rel = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))
        worst = max(worst, rel)
        print(f"check {onnx_path} head{n} {a.shape}: max|diff|/max|ref| = {rel:.2e}")
    if worst > tol:
        sys.exit(f"check: FAILED, {worst:.2e} > {tol:.0e}")


if __name__ == "__main__":
    main()
