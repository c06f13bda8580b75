"""numpy (OpenBLAS) f32 GEMM rate on this machine: 2048² matmul, median of ITERS.
Threads follow OPENBLAS_NUM_THREADS. Usage: gemm_peak.py [N] [ITERS]"""

import sys
import time

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 10
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
for _ in range(2):
    a @ b
ms = []
for _ in range(iters):
    t0 = time.perf_counter()
    a @ b
    ms.append((time.perf_counter() - t0) * 1e3)
ms.sort()
flop = 2.0 * n**3
print(f"numpy matmul {n}x{n} f32: median {ms[len(ms) // 2]:.2f} ms = "
      f"{flop / ms[len(ms) // 2] / 1e6:.0f} GFLOP/s, best {ms[0]:.2f} ms = {flop / ms[0] / 1e6:.0f} GFLOP/s")
