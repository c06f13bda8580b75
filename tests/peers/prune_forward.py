"""OpenCV DNN peer for pruning tests: runs a reference model and a pruned model on the same
random input and prints, per detection head (the conv before each [yolo]), the largest absolute
difference of the raw head outputs and the largest absolute reference value, as JSON.

usage: prune_forward.py REF.cfg REF.weights PRUNED.cfg PRUNED.weights SIZE [SEED]
       prune_forward.py --load CFG WEIGHTS SIZE   (only checks that OpenCV loads and runs it)
"""
import json
import sys

import cv2
import numpy as np


def head_names(cfg_path):
    """OpenCV names conv layer i `conv_i`; the heads are the convs right before [yolo]."""
    sections = []
    with open(cfg_path) as f:
        for line in f:
            s = line.strip()
            if s.startswith("[") and s.endswith("]"):
                sections.append(s[1:-1].strip())
    layers = sections[1:]
    return [f"conv_{i - 1}" for i, s in enumerate(layers) if s == "yolo"]


def forward(cfg, weights, size, seed):
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    rng = np.random.default_rng(seed)
    blob = rng.random((1, 3, size, size), dtype=np.float32)
    net.setInput(blob)
    names = head_names(cfg)
    return names, net.forward(names)


def main(argv):
    if argv[0] == "--load":
        cfg, weights, size = argv[1], argv[2], int(argv[3])
        names, outs = forward(cfg, weights, size, 0)
        print(json.dumps({"heads": names, "shapes": [list(o.shape) for o in outs]}))
        return
    ref_cfg, ref_w, pr_cfg, pr_w, size = argv[:5]
    seed = int(argv[5]) if len(argv) > 5 else 0
    names, ref = forward(ref_cfg, ref_w, int(size), seed)
    _, pruned = forward(pr_cfg, pr_w, int(size), seed)
    heads = []
    for n, a, b in zip(names, ref, pruned):
        if a.shape != b.shape:
            raise SystemExit(f"{n}: shape {a.shape} vs pruned {b.shape}")
        heads.append({
            "head": n,
            "max_abs_diff": float(np.max(np.abs(a - b))),
            "max_abs_ref": float(np.max(np.abs(a))),
            "mean_abs_diff": float(np.mean(np.abs(a - b))),
        })
    print(json.dumps({"heads": heads}))


if __name__ == "__main__":
    main(sys.argv[1:])
