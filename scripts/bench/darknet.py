"""Darknet cfg + .weights reading/writing for the benchmark peers (numpy only, no torch).

Semantics follow pjreddie/darknet (see shared notes slimyolo.md §1-2): conv pad = size/2 when
`pad=1`, maxpool padding defaults to size-1 and is split floor/ceil, BN is folded with Darknet's
CPU formula scale = gamma / (sqrt(var) + 1e-6).
"""

import struct
from dataclasses import dataclass, field

import numpy as np

BN_EPS = 1e-6


@dataclass
class Layer:
    kind: str
    opts: dict
    line: int
    in_shape: tuple = ()  # (C, H, W) of the main input
    out_shape: tuple = ()  # (C, H, W)
    inputs: list = field(default_factory=list)  # absolute indices of the layers it reads


def parse_cfg(path, size=None):
    """Returns (net_options, [Layer]) with shapes and absolute input indices resolved."""
    sections = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.split("#")[0].split(";")[0].strip()
            if not line:
                continue
            if line.startswith("["):
                if not line.endswith("]"):
                    raise ValueError(f"{path}:{lineno}: bad section header {line!r}")
                sections.append((line[1:-1].strip(), {}, lineno))
                continue
            if "=" not in line or not sections:
                raise ValueError(f"{path}:{lineno}: expected key=value, got {line!r}")
            k, v = line.split("=", 1)
            sections[-1][1][k.strip()] = v.strip()
    if not sections or sections[0][0] not in ("net", "network"):
        raise ValueError(f"{path}: first section must be [net]")
    net = sections[0][1]
    layers = [Layer(kind, opts, ln) for kind, opts, ln in sections[1:]]
    resolve_shapes(path, net, layers, size)
    return net, layers


def _int(layer, key, default=None):
    if key not in layer.opts:
        if default is None:
            raise ValueError(f"layer at line {layer.line}: missing key {key!r}")
        return default
    return int(layer.opts[key])


def conv_pad(layer):
    size = _int(layer, "size", 1)
    return size // 2 if _int(layer, "pad", 0) else _int(layer, "padding", 0)


def maxpool_pads(layer):
    """(size, stride, pad_begin, pad_end): Darknet padding p = size-1 split floor/ceil."""
    size = _int(layer, "size", 1)
    stride = _int(layer, "stride", 1)
    p = _int(layer, "padding", size - 1)
    return size, stride, p // 2, p - p // 2


def resolve_shapes(path, net, layers, size=None):
    c = int(net.get("channels", 3))
    h = int(size or net.get("height", 416))
    w = int(size or net.get("width", 416))
    prev = (c, h, w)
    for i, L in enumerate(layers):
        if L.kind == "route":
            idx = [int(s) for s in L.opts["layers"].split(",")]
            L.inputs = [j + i if j < 0 else j for j in idx]
            shapes = [layers[j].out_shape for j in L.inputs]
            L.out_shape = (sum(s[0] for s in shapes), shapes[0][1], shapes[0][2])
        elif L.kind == "shortcut":
            frm = int(L.opts["from"])
            L.inputs = [i - 1, frm + i if frm < 0 else frm]
            if layers[L.inputs[1]].out_shape != prev:
                raise ValueError(f"{path}:{L.line}: shortcut shapes differ")
            L.out_shape = prev
        else:
            L.inputs = [i - 1] if i > 0 else [-1]
            ci, hi, wi = prev
            if L.kind == "convolutional":
                k, s, p = _int(L, "size", 1), _int(L, "stride", 1), conv_pad(L)
                n = _int(L, "filters")
                L.out_shape = (n, (hi + 2 * p - k) // s + 1, (wi + 2 * p - k) // s + 1)
            elif L.kind == "maxpool":
                k, s, pb, pe = maxpool_pads(L)
                L.out_shape = (ci, (hi + pb + pe - k) // s + 1, (wi + pb + pe - k) // s + 1)
            elif L.kind == "upsample":
                s = _int(L, "stride", 2)
                L.out_shape = (ci, hi * s, wi * s)
            elif L.kind == "yolo":
                L.out_shape = prev
            else:
                raise ValueError(f"{path}:{L.line}: unsupported block [{L.kind}]")
        L.in_shape = prev
        prev = L.out_shape


def conv_param_count(layers, i):
    L = layers[i]
    cin = layers[i - 1].out_shape[0] if i > 0 else 3
    n, k = _int(L, "filters"), _int(L, "size", 1)
    return n, cin, k


def read_weights(path, layers):
    """Returns {layer index: (W[n,c,k,k], b[n])} with BN folded the Darknet/OpenCV way."""
    with open(path, "rb") as f:
        data = f.read()
    major, minor, _rev = struct.unpack_from("<3i", data, 0)
    off = 20 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 16
    floats = np.frombuffer(data, dtype="<f4", offset=off)
    pos, out = 0, {}
    for i, L in enumerate(layers):
        if L.kind != "convolutional":
            continue
        n, c, k = conv_param_count(layers, i)
        bn = _int(L, "batch_normalize", 0)
        need = n * (4 if bn else 1) + n * c * k * k
        if pos + need > floats.size:
            raise ValueError(f"{path}: ends inside conv layer {i} (line {L.line})")
        if bn:
            beta, gamma, mean, var = (floats[pos + j * n : pos + (j + 1) * n] for j in range(4))
            pos += 4 * n
        else:
            bias = floats[pos : pos + n]
            pos += n
        w = floats[pos : pos + n * c * k * k].reshape(n, c, k, k).astype(np.float32)
        pos += n * c * k * k
        if bn:
            scale = gamma / (np.sqrt(var) + BN_EPS)
            out[i] = ((w * scale[:, None, None, None]).astype(np.float32),
                      (beta - mean * scale).astype(np.float32))
        else:
            out[i] = (w, bias.astype(np.float32))
    if pos != floats.size:
        raise ValueError(f"{path}: {floats.size - pos} floats left after the last conv")
    return out


def write_random_weights(path, layers, seed):
    """Writes a Darknet 0.2.5 .weights file with He-scaled random weights and sane BN stats,
    so activations stay in a realistic range through the whole network."""
    rng = np.random.default_rng(seed)
    chunks = []
    for i, L in enumerate(layers):
        if L.kind != "convolutional":
            continue
        n, c, k = conv_param_count(layers, i)
        if _int(L, "batch_normalize", 0):
            chunks += [rng.uniform(-0.1, 0.1, n),  # beta
                       rng.uniform(0.5, 1.0, n),  # gamma
                       rng.uniform(-0.1, 0.1, n),  # mean
                       rng.uniform(0.5, 1.5, n)]  # var
        else:
            chunks.append(rng.uniform(-0.1, 0.1, n))
        chunks.append(rng.normal(0.0, np.sqrt(2.0 / (c * k * k)), n * c * k * k))
    body = np.concatenate(chunks).astype("<f4")
    with open(path, "wb") as f:
        f.write(struct.pack("<3iQ", 0, 2, 5, 0))
        f.write(body.tobytes())


def yolo_inputs(layers):
    """Indices of the layers whose outputs feed each [yolo] (the raw head convs)."""
    return [L.inputs[0] for L in layers if L.kind == "yolo"]


def letterbox(path, size):
    """RGB float32 NCHW in [0,1], aspect kept, gray 0.5 borders (Darknet letterbox_image)."""
    import cv2

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot read image")
    h, w = img.shape[:2]
    r = min(size / w, size / h)
    nw, nh = int(round(w * r)), int(round(h * r))
    rgb = cv2.cvtColor(cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    canvas = np.full((size, size, 3), 0.5, dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top : top + nh, left : left + nw] = rgb.astype(np.float32) / 255.0
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None])


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 5 or sys.argv[1] != "random":
        sys.exit("usage: darknet.py random CFG OUT.weights SEED")
    _n, _layers = parse_cfg(sys.argv[2])
    write_random_weights(sys.argv[3], _layers, int(sys.argv[4]))
    print(f"random weights: {sys.argv[3]} (seed {sys.argv[4]})")
