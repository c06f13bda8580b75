"""Per-node times of ONNX Runtime's CPU run of one model, to set beside Kestrel's per-layer
times (`LAYERS=1 examples/forward_bench ...`): which layers the gap to ORT sits in.

Usage (from the repo root, bench venv of scripts/bench-peers.sh):
  .cache/bench-venv/bin/python scripts/bench/ort_profile.py MODEL.onnx INPUT.f32 SIZE [ITERS] [THREADS]
INPUT.f32 is the raw 1x3xSIZExSIZE input bench-peers.sh writes (.cache/bench/input416.f32).
Prints the median per node (ms) over ITERS runs, sorted, and the sum per op type. ORT's graph is
the one bench-peers.sh times (ORT_ENABLE_ALL: convs rewritten to its NCHWc kernels on AVX-512).
"""
import collections
import json
import os
import sys
import tempfile

import numpy as np
import onnxruntime as ort


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    model, inp, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    iters = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    x = np.fromfile(inp, dtype=np.float32).reshape(1, 3, size, size)
    name = sess.get_inputs()[0].name
    for _ in range(iters):
        sess.run(None, {name: x})
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    per_node = collections.defaultdict(list)
    op_of = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            node = e["name"][: -len("_kernel_time")]
            per_node[node].append(e["dur"] / 1000.0)
            op_of[node] = e["args"].get("op_name", "")
    rows = sorted(((float(np.median(v)), k) for k, v in per_node.items()), reverse=True)
    by_op = collections.Counter()
    for ms, k in rows:
        by_op[op_of[k]] += ms
    print(f"{model}: sum of per-node medians {sum(ms for ms, _ in rows):.2f} ms "
          f"({iters} runs, {threads} threads)")
    print("by op: " + ", ".join(f"{k} {v:.2f}" for k, v in by_op.most_common()))
    for ms, k in rows:
        print(f"{ms:8.3f}  {op_of[k]:14s} {k}")


if __name__ == "__main__":
    main()
