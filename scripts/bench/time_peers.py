"""Times the peers on one model: ORT fp32, ORT static int8 (QDQ), OpenCV DNN (Darknet importer).
Batch 1, THREADS threads, same letterboxed input for all. Prints one JSON object:
{"model":…, "ort_fp32": {"median_ms":…, "p90_ms":…}, …, "int8_rel_err": …}.

Usage: time_peers.py NAME CFG WEIGHTS FP32.onnx INT8.onnx SIZE IMAGE ITERS THREADS
"""

import json
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort

import darknet


def timed(fn, iters):
    for _ in range(3):
        fn()
    ms = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "iters": iters}


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def rel_err(a, b):
    return float(max(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-12) for x, y in zip(a, b)))


def main():
    if len(sys.argv) != 10:
        sys.exit(__doc__)
    name, cfg, weights, fp32, int8, size, image, iters, threads = sys.argv[1:]
    size, iters, threads = int(size), int(iters), int(threads)
    x = darknet.letterbox(image, size)
    res = {"model": name, "size": size, "threads": threads}

    s32 = ort_session(fp32, threads)
    res["ort_fp32"] = timed(lambda: s32.run(None, {"data": x}), iters)
    s8 = ort_session(int8, threads)
    res["ort_int8"] = timed(lambda: s8.run(None, {"data": x}), iters)
    res["int8_rel_l2_err"] = rel_err(s8.run(None, {"data": x}), s32.run(None, {"data": x}))
    del s32, s8
    res["versions"] = {"onnxruntime": ort.__version__, "opencv": cv2.__version__}
    res["opencv"] = time_opencv(cfg, weights, x, iters, threads)
    print(json.dumps(res))


def time_opencv(cfg, weights, x, iters, threads):
    if not hasattr(cv2.dnn, "readNetFromDarknet"):  # OpenCV 5 dropped the Darknet importer
        return None
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    outs = net.getUnconnectedOutLayersNames()

    def cv_run():
        net.setInput(x)
        net.forward(outs)

    return timed(cv_run, iters)


if __name__ == "__main__":
    main()
